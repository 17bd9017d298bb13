package ordering_test

import (
	"fmt"

	"github.com/sadpath/sadpath/ordering"
)

// Latest keeps the newest version per key: a late or duplicated older
// version never rolls a projection back.
func ExampleLatest() {
	var status ordering.Latest[string]
	status.Put("pay_1", 1, "pending")
	status.Put("pay_1", 3, "settled")
	fmt.Println(status.Put("pay_1", 2, "authorized")) // arrived late: dropped
	v, version, _ := status.Get("pay_1")
	fmt.Println(v, version)
	// Output:
	// false
	// settled 3
}

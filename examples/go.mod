module github.com/sadpath/sadpath/examples

go 1.26.0

replace github.com/sadpath/sadpath => ../

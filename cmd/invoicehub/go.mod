module github.com/invoicehub/invoicehub/cmd/invoicehub

go 1.26

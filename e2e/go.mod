module github.com/invoicehub/invoicehub/e2e

go 1.26

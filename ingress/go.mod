module github.com/invoicehub/invoicehub/ingress

go 1.26

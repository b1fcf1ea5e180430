module github.com/invoicehub/invoicehub/normalizer

go 1.26

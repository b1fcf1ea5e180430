module github.com/invoicehub/invoicehub/schemas

go 1.26.0

require (
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.3
	github.com/shopspring/decimal v1.6.0
)

require golang.org/x/text v0.42.0 // indirect

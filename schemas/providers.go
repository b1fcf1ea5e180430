package schemas

// Providers lists the providers whose webhooks invoicehub turns into
// canonical events: the values of Invoice.Provider and of the provider
// token of canonical subjects. Ingress accepts sources of these providers
// only, and the normalizer maps each of them.
var Providers = []string{"mercoa", "moxie", "qonto", "rillet", "standardwebhooks"}

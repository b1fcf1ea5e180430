package provider

// pennylane: the same t=<unix>,v1=<hex> scheme as Qonto, in
// X-Pennylane-Signature. The body is read as an envelope like Qonto's; an
// envelope without id gets a content-derived id.
var pennylane = Provider{
	Name:     "pennylane",
	Modes:    []string{"hmac"},
	Key:      rawKey,
	Verify:   pennylaneSignature.verify,
	Identify: identifyEnvelope("com.pennylane.", false),
	Sign:     pennylaneSignature.sign,
}

var pennylaneSignature = tv1Signature{header: "X-Pennylane-Signature"}

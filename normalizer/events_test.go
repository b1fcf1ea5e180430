package normalizer

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/invoicehub/invoicehub/normalizer/mapper"
	"github.com/invoicehub/invoicehub/schemas"
)

// documentedEvent is one event a provider documents, the fixture built from
// its documentation's example, and what normalizing it as a first sighting
// does: the canonical kinds published, "skipped", or the dead-letter class.
type documentedEvent struct {
	event, fixture, want string
	// reading marks a row that is not one of the provider's listed
	// webhooks but another reading of one, or a refusal.
	reading bool
}

// documentedEvents lists every event type each provider documents
// (../shared/reference/PROVIDERS.md; README, "Providers"): the tables
// README and docs/ARCHITECTURE.md show.
var documentedEvents = map[string][]documentedEvent{
	"qonto": {
		{"v1/client-invoices, no data.event (the page's example)", "raw/qonto/client-invoice-documented", "created updated sent payment_received paid", false},
		{"v1/client-invoices, data.event created", "raw/qonto/created-draft", "created updated", true},
		{"v1/client-invoices, data.event updated", "raw/qonto/client-invoice-documented-event-updated", "created updated sent payment_received paid", true},
		{"v1/client-invoices, the bare invoice (the page's generated schema)", "raw/qonto/client-invoice-bare", "created updated sent payment_received paid", true},
		{"v1/client-invoices, a data.event the page does not list", "bad/qonto/unknown-event-type", "unknown_event_type", true},
		{"v1/clients", "skip/qonto/clients-created", "skipped", false},
		{"v1/transactions", "skip/qonto/transactions-created", "skipped", false},
		{"v1/payment-links-connections", "skip/qonto/payment-links-connections", "skipped", false},
		{"v1/sepa-direct-debit-mandates", "skip/qonto/sepa-direct-debit-mandates", "skipped", false},
		{"v1/consent-revocations", "skip/qonto/consent-revocations", "skipped", false},
	},
	"rillet": {
		{"INVOICE CREATED", "raw/rillet/invoice-created", "created updated sent", false},
		{"INVOICE UPDATED", "raw/rillet/invoice-updated", "created updated sent", false},
		{"INVOICE PAYMENT_UPDATED", "raw/rillet/invoice-payment-updated", "created updated sent payment_received paid", false},
		{"INVOICE DELETED", "raw/rillet/invoice-deleted", "deleted_unknown", false},
		{"CREDIT_MEMO CREATED", "raw/rillet/credit-memo-created", "created updated payment_received paid", false},
		{"CREDIT_MEMO UPDATED", "raw/rillet/credit-memo-updated", "created updated", false},
		{"CREDIT_MEMO PAYMENT_UPDATED", "raw/rillet/credit-memo-payment-updated", "created updated payment_received", false},
		{"CREDIT_MEMO DELETED", "raw/rillet/credit-memo-deleted", "deleted_unknown", false},
		{"BILL CREATED", "raw/rillet/bill-created", "created updated", false},
		{"BILL UPDATED", "raw/rillet/bill-updated-inclusive-paid", "created updated payment_received paid", false},
		{"BILL DELETED", "raw/rillet/bill-deleted", "deleted_unknown", false},
		{"CONTRACT CREATED", "skip/rillet/contract-created", "skipped", false},
		{"CONTRACT UPDATED", "skip/rillet/contract-updated", "skipped", false},
		{"CONTRACT DELETED", "skip/rillet/contract-deleted", "skipped", false},
		{"CUSTOMER CREATED", "skip/rillet/customer-created", "skipped", false},
		{"CUSTOMER UPDATED", "skip/rillet/customer-updated", "skipped", false},
		{"CUSTOMER DELETED", "skip/rillet/customer-deleted", "skipped", false},
		{"VENDOR CREATED", "skip/rillet/vendor-created", "skipped", false},
		{"VENDOR UPDATED", "skip/rillet/vendor-updated", "skipped", false},
		{"VENDOR DELETED", "skip/rillet/vendor-deleted", "skipped", false},
		{"JOURNAL_ENTRY CREATED", "skip/rillet/journal-entry-created", "skipped", false},
		{"JOURNAL_ENTRY UPDATED", "skip/rillet/journal-entry-updated", "skipped", false},
		{"JOURNAL_ENTRY DELETED", "skip/rillet/journal-entry-deleted", "skipped", false},
	},
	"mercoa": {
		{"counterparty.added", "skip/mercoa/counterparty-added", "skipped", false},
		{"counterparty.hidden", "skip/mercoa/counterparty-hidden", "skipped", false},
		{"counterparty.onboarding.completed", "skip/mercoa/counterparty-onboarding-completed", "skipped", false},
		{"entity.created", "skip/mercoa/entity-created", "skipped", false},
		{"entity.updated", "skip/mercoa/entity-updated", "skipped", false},
		{"entity.status.changed", "skip/mercoa/entity-status-changed", "skipped", false},
		{"entity.metadata.updated", "skip/mercoa/entity-metadata-updated", "skipped", false},
		{"paymentMethod.created", "skip/mercoa/payment-method-created", "skipped", false},
		{"paymentMethod.updated", "skip/mercoa/payment-method-updated", "skipped", false},
		{"paymentMethod.deleted", "skip/mercoa/payment-method-deleted", "skipped", false},
		{"invoice.created", "raw/mercoa/invoice-created-seed", "created updated payment_received paid", false},
		{"invoice.updated", "raw/mercoa/invoice-updated-jpy", "created updated", false},
		{"invoice.deleted", "raw/mercoa/invoice-deleted", "deleted", false},
		{"invoice.status.changed", "raw/mercoa/invoice-status-changed", "created updated status_changed", false},
		{"invoice.email (with the invoice it created)", "raw/mercoa/invoice-email", "created updated", false},
		{"invoice.email (existingInvoiceId only)", "skip/mercoa/invoice-email-existing-invoice", "skipped", true},
		{"invoice.status.draft", "raw/mercoa/invoice-status-draft", "created updated", false},
		{"invoice.status.new", "raw/mercoa/invoice-status-new", "created updated", false},
		{"invoice.status.approved", "raw/mercoa/invoice-status-approved", "created updated", false},
		{"invoice.status.refused", "raw/mercoa/invoice-status-refused", "created updated", false},
		{"invoice.status.scheduled", "raw/mercoa/invoice-status-scheduled", "created updated", false},
		{"invoice.status.pending", "raw/mercoa/invoice-status-pending", "created updated", false},
		{"invoice.status.canceled", "raw/mercoa/invoice-status-canceled", "created updated", false},
		{"invoice.status.paid", "raw/mercoa/invoice-status-paid", "created updated payment_received paid", false},
		{"invoice.status.failed", "raw/mercoa/invoice-status-failed", "created updated", false},
		{"invoice.status.archived", "raw/mercoa/invoice-status-archived", "created updated", false},
		{"transaction.created", "skip/mercoa/transaction-created", "skipped", false},
		{"transaction.pending", "skip/mercoa/transaction-pending", "skipped", false},
		{"transaction.completed", "skip/mercoa/transaction-completed", "skipped", false},
		{"transaction.failed", "skip/mercoa/transaction-failed", "skipped", false},
		{"transaction.returned", "skip/mercoa/transaction-returned", "skipped", false},
		{"invoice.bulk.created", "skip/mercoa/invoice-bulk-created", "skipped", false},
		{"invoice.bulk.updated", "skip/mercoa/invoice-bulk-updated", "skipped", false},
		{"invoice.bulk.approved", "skip/mercoa/invoice-bulk-approved", "skipped", false},
		{"entity.bulk.created", "skip/mercoa/entity-bulk-created", "skipped", false},
		{"invoice.collection.overdue", "raw/mercoa/invoice-collection-overdue", "created updated", false},
		{"invoice.collection.email.sent", "raw/mercoa/invoice-collection-email-sent", "created updated", false},
		{"invoice.collection.email.received", "raw/mercoa/invoice-collection-email-received", "created updated", false},
		{"ocr.job.completed", "skip/mercoa/ocr-job-completed", "skipped", false},
		{"paymentGateway.validation.completed", "skip/mercoa/payment-gateway-validation-completed", "skipped", false},
		{"paymentGateway.process.completed", "skip/mercoa/payment-gateway-process-completed", "skipped", false},
		{"an invoice event Mercoa does not document", "bad/mercoa/invoice-unknown-event", "unknown_event_type", true},
	},
	"moxie": {
		{"InvoiceSent", "raw/moxie/invoice-sent", "created updated sent", false},
		{"PaymentReceived", "raw/moxie/payment-received-seed", "created updated sent payment_received", false},
		{"ClientCreate", "skip/moxie/client-create", "skipped", false},
		{"ClientUpdate", "skip/moxie/client-update", "skipped", false},
		{"ClientDelete", "skip/moxie/client-delete", "skipped", false},
		{"DeliverableApproval", "skip/moxie/deliverable-approval", "skipped", false},
		{"DeliverableCreate", "skip/moxie/deliverable-create", "skipped", false},
		{"DeliverableUpdate", "skip/moxie/deliverable-update", "skipped", false},
		{"DeliverableDelete", "skip/moxie/deliverable-delete", "skipped", false},
		{"an invoice event Moxie does not document", "bad/moxie/unknown-event", "unknown_event_type", true},
	},
	"standardwebhooks": {
		{"invoice.created", "raw/standardwebhooks/invoice-created", "created updated", false},
		{"invoice.updated", "raw/standardwebhooks/invoice-updated-paid", "created updated payment_received paid", false},
		{"invoice.deleted", "raw/standardwebhooks/invoice-deleted", "deleted", false},
		{"another invoice.* type", "bad/standardwebhooks/unknown-invoice-event", "unknown_event_type", true},
		{"a type not about invoices", "skip/standardwebhooks/customer-updated", "skipped", true},
	},
}

// TestDocumentedEvents normalizes the example of every documented event of
// every provider and checks what comes out; Mercoa's 40 and Rillet's 23
// webhooks are all listed.
func TestDocumentedEvents(t *testing.T) {
	if got, want := slices.Sorted(maps.Keys(documentedEvents)), mapper.Providers(); !slices.Equal(got, want) {
		t.Fatalf("tables for %v, mappers for %v", got, want)
	}
	if !slices.Equal(mapper.Providers(), schemas.Providers) {
		t.Fatalf("mappers for %v, contract lists %v", mapper.Providers(), schemas.Providers)
	}
	for provider, n := range map[string]int{"mercoa": 40, "rillet": 23, "moxie": 9} {
		if got := countDocumented(documentedEvents[provider]); got != n {
			t.Errorf("%s: %d documented webhooks in the table, want %d", provider, got, n)
		}
	}
	for provider, events := range documentedEvents {
		for _, ev := range events {
			t.Run(provider+"/"+ev.event, func(t *testing.T) {
				out, err := normalizeFixture(t, "testdata/"+ev.fixture+".json", 1)
				got := string(out.Outcome)
				switch {
				case err != nil:
					got = Class(err)
				case out.Outcome == OutcomePublished:
					var kinds []string
					for _, c := range out.Events {
						kinds = append(kinds, string(c.Data.Event.Kind))
					}
					got = strings.Join(kinds, " ")
				}
				if got != ev.want {
					t.Fatalf("%s: %s, want %s (err %v)", ev.fixture, got, ev.want, err)
				}
			})
		}
	}
}

// countDocumented counts a table's rows that are webhooks of the
// provider's list.
func countDocumented(events []documentedEvent) int {
	n := 0
	for _, ev := range events {
		if !ev.reading {
			n++
		}
	}
	return n
}

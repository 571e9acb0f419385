// Package notify tells people about access requests and the decisions on
// them, by posting events to webhooks (plain JSON, or a Slack-compatible
// message) so that an approver learns a request is waiting.
//
// The gateway calls a Notifier, which never blocks it: a Webhook queues the
// event and its Run loop delivers the queue in order, retrying network
// errors, 5xx and 429 answers with exponential backoff (honouring
// Retry-After) up to a bounded number of attempts. Every attempt of one
// event carries the same X-Kubegate-Event-Id header, so receivers can drop
// duplicates. Notification is best effort: a full queue drops events, and
// Stats counts what was delivered, failed and dropped.
//
// Neither the webhook URL's path and query (a Slack webhook URL is itself a
// secret) nor header values are ever logged.
package notify

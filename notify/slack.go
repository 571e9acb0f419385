package notify

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// slackPayload is the body of a Slack-compatible incoming webhook: Text is
// the fallback shown in notifications, Blocks the message itself.
type slackPayload struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

// slackBlock is a Block Kit section (Text and/or Fields) or context
// (Elements) block.
type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Fields   []slackText `json:"fields,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

// slackText is a Block Kit text object.
type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// Lengths, in characters, that user-supplied text is cut to, so that every
// text object stays within Block Kit's limits (3000 for a section's text,
// 2000 for a field) however the event is filled.
const (
	slackShort = 200  // names, ids, rules
	slackLong  = 1000 // summaries, reasons, commands
)

func mrkdwn(s string) slackText { return slackText{Type: "mrkdwn", Text: s} }

// slackMessage renders ev as a Slack message: a section with the headline
// and one line of detail, a section of fields, and for a new request a
// section with the approve and deny commands. Every piece of event text is
// escaped and put on one line, so a requester's reason can neither mention
// @channel, link elsewhere, nor fake a line of its own.
func slackMessage(ev Event) slackPayload {
	head := slackHeadline(ev)
	var detail string
	if ev.Type == TypeRequestCreated {
		if ev.Reason != "" {
			detail = "Reason: " + slackEscape(ev.Reason, slackLong, false)
		}
	} else if ev.Summary != "" {
		detail = slackName(ev.Requester) + " asked " + slackAsk(ev) + " " + slackEscape(ev.Summary, slackLong, false)
	}
	main := head
	if detail != "" {
		main += "\n" + detail
	}
	blocks := []slackBlock{{Type: "section", Text: &slackText{Type: "mrkdwn", Text: main}}}
	if fields := slackFields(ev); len(fields) > 0 {
		blocks = append(blocks, slackBlock{Type: "section", Fields: fields})
	}
	if ev.Type == TypeRequestCreated && (ev.ApproveCommand != "" || ev.DenyCommand != "") {
		var cmds []string
		if ev.ApproveCommand != "" {
			cmds = append(cmds, "*Approve:* "+slackCode(ev.ApproveCommand, slackLong))
		}
		if ev.DenyCommand != "" {
			cmds = append(cmds, "*Deny:* "+slackCode(ev.DenyCommand, slackLong))
		}
		blocks = append(blocks, slackBlock{Type: "section", Text: &slackText{Type: "mrkdwn", Text: strings.Join(cmds, "\n")}})
	}
	return slackPayload{Text: head, Blocks: blocks}
}

// slackHeadline is the first line, e.g. "kubegate: *agent* asks to delete
// deployments/web in namespace prod" or "kubegate: request `1234` approved
// by *alice*: looks fine".
func slackHeadline(ev Event) string {
	ref := "request"
	if ev.Type == TypeGrantRevoked {
		ref = "grant"
	}
	if ev.RequestID != "" {
		ref += " " + slackCode(ev.RequestID, slackShort)
	}
	by := ""
	if ev.Actor != "" {
		by = " by " + slackName(ev.Actor)
	}
	because := ""
	if ev.Reason != "" {
		because = ": " + slackEscape(ev.Reason, slackLong, false)
	}
	var h string
	switch ev.Type {
	case TypeRequestCreated:
		if ev.Summary == "" {
			return "kubegate: new " + ref + " from " + slackName(ev.Requester)
		}
		return "kubegate: " + slackName(ev.Requester) + " asks " + slackAsk(ev) + " " + slackEscape(ev.Summary, slackLong, false)
	case TypeRequestApproved:
		h = ref + " approved" + by + because
	case TypeApprovalAdded:
		h = ref + " approved" + by + " (" + slackApprovals(ev) + " approvals)" + because
	case TypeRequestDenied:
		h = ref + " denied" + by + because
	case TypeRequestExpired:
		h = ref + " expired" + because
	case TypeGrantRevoked:
		h = ref + " revoked" + by + because
	default:
		h = ref + ": " + slackEscape(ev.Type, slackShort, false) + by + because
	}
	return "kubegate: " + h
}

// slackAsk is the word between "asks" and the summary: a hold's summary is
// an action ("asks to delete ..."), a grant's a thing ("asks for grant of
// ...").
func slackAsk(ev Event) string {
	if ev.Kind == KindGrant {
		return "for"
	}
	return "to"
}

// slackFields are the request's facts, as "*Label*\nvalue" fields.
func slackFields(ev Event) []slackText {
	var fs []slackText
	add := func(label, value string) {
		if value != "" {
			fs = append(fs, mrkdwn("*"+label+"*\n"+value))
		}
	}
	if ev.RequestID != "" {
		id := slackCode(ev.RequestID, slackShort)
		if ev.Kind != "" {
			id += " (" + slackEscape(ev.Kind, slackShort, false) + ")"
		}
		add("Request", id)
	}
	add("Requester", slackEscape(ev.Requester, slackShort, false))
	add("Rule", slackEscape(ev.Rule, slackShort, false))
	if !ev.ExpiresAt.IsZero() {
		add("Expires", ev.ExpiresAt.UTC().Format("2006-01-02 15:04:05 UTC"))
	}
	if ev.ApprovalsRequired > 0 {
		add("Approvals", slackApprovals(ev))
	}
	add("Node", slackEscape(ev.Node, slackShort, false))
	return fs
}

func slackApprovals(ev Event) string {
	s := strconv.Itoa(ev.Approvals)
	if ev.ApprovalsRequired > 0 {
		s += " of " + strconv.Itoa(ev.ApprovalsRequired)
	}
	return s
}

// slackName is a person or agent in bold; "someone" if unknown.
func slackName(s string) string {
	if s == "" {
		return "someone"
	}
	return "*" + slackEscape(s, slackShort, false) + "*"
}

// slackCode is s as inline code.
func slackCode(s string, limit int) string {
	return "`" + slackEscape(s, limit, true) + "`"
}

// slackEscape makes event text safe for mrkdwn: &, < and > become entities
// (so no <!channel>, <@user> or <url|text> gets through), control and line
// separator characters become spaces, invisible format characters (bidi
// overrides and the like) are dropped, and the result is cut to limit
// characters with an ellipsis. In code, a backtick would end the code span
// early, so it becomes an apostrophe.
func slackEscape(s string, limit int, code bool) string {
	var b strings.Builder
	n, cut := 0, 0 // characters written; bytes written while n <= limit-1
	for _, r := range s {
		var piece string
		switch {
		case r == '&':
			piece = "&amp;"
		case r == '<':
			piece = "&lt;"
		case r == '>':
			piece = "&gt;"
		case r == '`' && code:
			piece = "'"
		case unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp):
			piece = " "
		case unicode.Is(unicode.Cf, r):
			continue
		default:
			piece = string(r) // invalid UTF-8 arrives as U+FFFD
		}
		n += utf8.RuneCountInString(piece)
		if n > limit {
			return b.String()[:cut] + "…"
		}
		b.WriteString(piece)
		if n <= limit-1 {
			cut = b.Len()
		}
	}
	return b.String()
}

package web

import (
	"fmt"
	"html/template"
	"strings"

	"github.com/ubihooks/ubihooks"
)

// sparkline draws a webhook's buckets as a small bar chart: succeeded up, failed in red on
// top. It is decorative next to the rate it accompanies, so it is hidden from screen readers.
func sparkline(buckets []ubihooks.StatsBucket) template.HTML {
	if len(buckets) == 0 {
		return ""
	}
	const w, h = 2.0, 16.0
	max := 1
	for _, b := range buckets {
		if n := b.Succeeded + b.Failed; n > max {
			max = n
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg class="spark" aria-hidden="true" focusable="false" width="%d" height="%d" viewBox="0 0 %d %d">`, int(w*1.5)*len(buckets), int(h), int(w*1.5)*len(buckets), int(h))
	for i, b := range buckets {
		x := float64(i) * w * 1.5
		total := b.Succeeded + b.Failed
		if total == 0 {
			fmt.Fprintf(&sb, `<rect class="none" x="%.1f" y="%.1f" width="%.1f" height="1"/>`, x, h-1, w)
			continue
		}
		okH := h * float64(b.Succeeded) / float64(max)
		badH := h * float64(b.Failed) / float64(max)
		fmt.Fprintf(&sb, `<rect class="ok" x="%.1f" y="%.1f" width="%.1f" height="%.1f"/>`, x, h-okH, w, okH)
		if badH > 0 {
			fmt.Fprintf(&sb, `<rect class="bad" x="%.1f" y="%.1f" width="%.1f" height="%.1f"/>`, x, h-okH-badH, w, badH)
		}
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}

// chart draws the buckets as a labelled bar chart with a text equivalent (a title and a
// description naming the totals), for the webhook's health section.
func chart(buckets []ubihooks.StatsBucket, title string) template.HTML {
	if len(buckets) == 0 {
		return ""
	}
	const W, H, pad = 600.0, 120.0, 18.0
	max, ok, bad, busiest := 0, 0, 0, 0
	for i, b := range buckets {
		n := b.Succeeded + b.Failed
		if n > max {
			max, busiest = n, i
		}
		ok += b.Succeeded
		bad += b.Failed
	}
	desc := fmt.Sprintf("%d succeeded and %d failed in %d buckets", ok, bad, len(buckets))
	if max > 0 {
		desc += fmt.Sprintf("; the busiest, from %s, had %d", buckets[busiest].Start.UTC().Format("Jan 2 15:04 UTC"), max)
	}
	if max == 0 {
		return template.HTML(`<p class="muted">No delivery was created in this window.</p>`)
	}
	bw := W / float64(len(buckets))
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg class="chart" role="img" viewBox="0 0 %.0f %.0f" aria-labelledby="%[3]s-t %[3]s-d"><title id="%[3]s-t">%[4]s</title><desc id="%[3]s-d">%[5]s</desc>`,
		W, H+pad, chartID(title), template.HTMLEscapeString(title), template.HTMLEscapeString(desc))
	fmt.Fprintf(&sb, `<line class="axis" x1="0" y1="%.1f" x2="%.0f" y2="%.1f"/>`, H, W, H)
	for i, b := range buckets {
		x := float64(i)*bw + bw*0.1
		okH := (H - 4) * float64(b.Succeeded) / float64(max)
		badH := (H - 4) * float64(b.Failed) / float64(max)
		if okH > 0 {
			fmt.Fprintf(&sb, `<rect class="ok" x="%.1f" y="%.1f" width="%.1f" height="%.1f"/>`, x, H-okH, bw*0.8, okH)
		}
		if badH > 0 {
			fmt.Fprintf(&sb, `<rect class="bad" x="%.1f" y="%.1f" width="%.1f" height="%.1f"/>`, x, H-okH-badH, bw*0.8, badH)
		}
	}
	fmt.Fprintf(&sb, `<text x="0" y="%.0f" font-size="11" fill="currentColor">%s</text>`, H+pad-4, template.HTMLEscapeString(buckets[0].Start.UTC().Format("Jan 2 15:04")))
	fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" font-size="11" fill="currentColor" text-anchor="end">now · max %d</text>`, W, H+pad-4, max)
	sb.WriteString(`</svg>`)
	sb.WriteString(`<p class="hint">` + template.HTMLEscapeString(desc) + `.</p>`)
	return template.HTML(sb.String())
}

func chartID(title string) string {
	var b strings.Builder
	b.WriteString("c")
	for _, r := range title {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

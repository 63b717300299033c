package web

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/ubihooks/ubihooks"
)

// webhookForm is the create and edit form: what it shows, and what it read back.
// Protected header values are never held here for display: a stored secret shows as
// "stored", and one typed into a form that failed is not sent back.
type webhookForm struct {
	Edit          bool
	Original      string // the name before an edit (the form's target)
	Name          string
	Description   string
	Object        string // "deployment:name" or "pipeline:name"
	ObjectType    string
	ObjectName    string
	Version       string // "" follows the default version
	Event         string
	URL           string
	Timeout       string
	Retry         bool
	IncludeResult bool
	Enabled       bool
	Headers       []headerRow
	Labels        []labelRow

	Choices  objectChoices
	Versions []string // of the chosen object, for the version suggestions
	Default  string   // the chosen object's default version now
}

type headerRow struct {
	Key       string
	Value     string // never a protected value
	Protected bool
	Stored    bool // a protected secret is stored under this key
	Retyped   bool // a protected value was typed but the form came back: type it again
}

type labelRow struct{ Key, Value string }

// objectChoices are the project's objects for the form's object select.
type objectChoices struct {
	Deployments, Experiments, Pipelines []*ubihooks.Object
}

func (o objectChoices) Empty() bool {
	return len(o.Deployments)+len(o.Experiments)+len(o.Pipelines) == 0
}

// formFromWebhook fills the edit form from a stored webhook.
func formFromWebhook(w *ubihooks.Webhook) *webhookForm {
	f := &webhookForm{
		Edit: true, Original: w.Name, Name: w.Name, Description: w.Description,
		ObjectType: string(w.ObjectType), ObjectName: w.ObjectName, Object: string(w.ObjectType) + ":" + w.ObjectName,
		Version: w.Version, Event: string(w.Event), URL: w.URL, Timeout: strconv.Itoa(int(w.Timeout.Seconds())),
		Retry: w.Retry, IncludeResult: w.IncludeResult, Enabled: w.Enabled,
	}
	for _, h := range w.Headers {
		r := headerRow{Key: h.Key, Protected: h.Protected, Stored: h.Protected}
		if !h.Protected {
			r.Value = h.Value
		}
		f.Headers = append(f.Headers, r)
	}
	keys := make([]string, 0, len(w.Labels))
	for k := range w.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f.Labels = append(f.Labels, labelRow{k, w.Labels[k]})
	}
	return f
}

// readWebhookForm reads a posted form. stored names the protected headers of the webhook
// being edited (nil on create).
func readWebhookForm(r *http.Request, stored map[string]bool) (*webhookForm, []ubihooks.HeaderInput, map[string]string, *int, error) {
	if err := r.ParseForm(); err != nil {
		return nil, nil, nil, nil, ubihooks.Errorf(ubihooks.EINVALID, "the form could not be read: %v", err)
	}
	v := r.PostForm
	f := &webhookForm{
		Name: v.Get("name"), Description: v.Get("description"), Object: v.Get("object"), Version: strings.TrimSpace(v.Get("version")),
		Event: v.Get("event"), URL: strings.TrimSpace(v.Get("url")), Timeout: strings.TrimSpace(v.Get("timeout")),
		Retry: v.Get("retry") != "", IncludeResult: v.Get("include_result") != "", Enabled: v.Get("enabled") != "",
	}
	f.ObjectType, f.ObjectName, _ = strings.Cut(f.Object, ":")
	var headers []ubihooks.HeaderInput
	for _, i := range rowIndexes(v, "header_key_") {
		n := strconv.Itoa(i)
		key, value := strings.TrimSpace(v.Get("header_key_"+n)), v.Get("header_value_"+n)
		protected := v.Get("header_protected_"+n) != ""
		if key == "" && value == "" {
			continue
		}
		row := headerRow{Key: key, Protected: protected, Stored: protected && stored[key]}
		in := ubihooks.HeaderInput{Key: key, Protected: &protected}
		if protected && value == "" {
			// The PATCH rule: a protected header without a value keeps its stored secret.
		} else {
			val := value
			in.Value = &val
			if protected {
				row.Retyped = true
			} else {
				row.Value = value
			}
		}
		headers = append(headers, in)
		f.Headers = append(f.Headers, row)
	}
	labels := map[string]string{}
	for _, i := range rowIndexes(v, "label_key_") {
		n := strconv.Itoa(i)
		key, value := strings.TrimSpace(v.Get("label_key_"+n)), strings.TrimSpace(v.Get("label_value_"+n))
		if key == "" && value == "" {
			continue
		}
		labels[key] = value
		f.Labels = append(f.Labels, labelRow{key, value})
	}
	var timeout *int
	if f.Timeout != "" {
		n, err := strconv.Atoi(f.Timeout)
		if err != nil {
			return f, headers, labels, nil, ubihooks.Errorf(ubihooks.EINVALID, "timeout must be a whole number of seconds, got %q", f.Timeout)
		}
		timeout = &n
	}
	if headers == nil {
		headers = []ubihooks.HeaderInput{}
	}
	return f, headers, labels, timeout, nil
}

// rowIndexes returns the sorted row numbers of fields named prefix+N.
func rowIndexes(v url.Values, prefix string) []int {
	var out []int
	for k := range v {
		if n, ok := strings.CutPrefix(k, prefix); ok {
			if i, err := strconv.Atoi(n); err == nil && i >= 0 && i < 1000 {
				out = append(out, i)
			}
		}
	}
	sort.Ints(out)
	return out
}

// create returns the API body of a create.
func (f *webhookForm) create(headers []ubihooks.HeaderInput, labels map[string]string, timeout *int) ubihooks.WebhookCreate {
	in := ubihooks.WebhookCreate{
		Name: f.Name, ObjectType: f.ObjectType, ObjectName: f.ObjectName, URL: f.URL, Headers: headers, Event: f.Event,
		Description: &f.Description, Labels: labels, Timeout: timeout, Enabled: &f.Enabled, Retry: &f.Retry, IncludeResult: &f.IncludeResult,
	}
	if f.Version != "" {
		in.Version = &f.Version
	}
	return in
}

// update returns the API body of an edit (every editable field).
func (f *webhookForm) update(headers []ubihooks.HeaderInput, labels map[string]string, timeout *int) ubihooks.WebhookUpdate {
	return ubihooks.WebhookUpdate{
		Name: &f.Name, URL: &f.URL, Headers: &headers, Event: &f.Event, Description: &f.Description, Labels: &labels,
		Timeout: timeout, Enabled: &f.Enabled, Retry: &f.Retry, IncludeResult: &f.IncludeResult,
	}
}

// test returns the API body of a test of the form's values.
func (f *webhookForm) test(headers []ubihooks.HeaderInput, timeout *int) ubihooks.WebhookTestCreate {
	in := ubihooks.WebhookTestCreate{
		ObjectType: f.ObjectType, ObjectName: f.ObjectName, URL: f.URL, Headers: headers, Event: f.Event,
		Timeout: timeout, Retry: &f.Retry, IncludeResult: &f.IncludeResult,
	}
	if f.Version != "" {
		in.Version = &f.Version
	}
	return in
}

// fieldOf maps the field an API message names to the form's field: the object select
// stands for object_type and object_name.
func fieldOf(msg string) string {
	if f := errorField(msg); f != "object_type" && f != "object_name" {
		return f
	}
	return "object"
}

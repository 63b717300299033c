package ubihooks

import (
	"encoding/json"
	"testing"
	"time"
)

func TestValidateResult(t *testing.T) {
	t.Parallel()
	structured := &Object{Name: "calc", Type: ObjectDeployment, OutputType: TypeStructured}
	plain := &Object{Name: "echo", Type: ObjectDeployment, OutputType: TypePlain}
	for _, tc := range []struct {
		name   string
		o      *Object
		result string
		err    string // "" when valid
	}{
		{"object for structured", structured, `{"y": 42}`, ""},
		{"object padded with whitespace", structured, " {\"y\": 42}\n", ""},
		{"empty object for structured", structured, `{}`, ""},
		{"string for plain", plain, `"HELLO"`, ""},
		{"empty string for plain", plain, `""`, ""},
		{"missing", structured, ``, "result is required and must be JSON"},
		{"malformed", structured, `{"y":`, "result is required and must be JSON"},
		{"null for structured", structured, `null`, "deployment calc has structured output: result must be a JSON object"},
		{"array for structured", structured, `[{"y": 1}]`, "deployment calc has structured output: result must be a JSON object"},
		{"string for structured", structured, `"{\"y\": 1}"`, "deployment calc has structured output: result must be a JSON object"},
		{"object for plain", plain, `{"y": 1}`, "deployment echo has plain output: result must be a string"},
		{"number for plain", plain, `42`, "deployment echo has plain output: result must be a string"},
		{"null for plain", plain, `null`, "deployment echo has plain output: result must be a string"},
	} {
		err := tc.o.ValidateResult(json.RawMessage(tc.result))
		if tc.err == "" {
			if err != nil {
				t.Errorf("%s: ValidateResult(%s) = %v, want nil", tc.name, tc.result, err)
			}
			continue
		}
		if ErrorCode(err) != EINVALID || ErrorMessage(err) != tc.err {
			t.Errorf("%s: ValidateResult(%s) = %v, want %s %q", tc.name, tc.result, err, EINVALID, tc.err)
		}
	}
}

// TestValidateResultFieldsNotChecked: output fields describe what a backend should answer;
// a result is not refused for its fields (the backend has run by then).
func TestValidateResultFieldsNotChecked(t *testing.T) {
	t.Parallel()
	o := &Object{Name: "calc", OutputType: TypeStructured, OutputFields: []Field{{Name: "y", DataType: "int"}}}
	if err := o.ValidateResult(json.RawMessage(`{"z": "not y"}`)); err != nil {
		t.Errorf("ValidateResult with other fields = %v, want nil", err)
	}
}

// TestTimeoutMessage: the error_message of a timed-out request, the same from every path
// that times requests out.
func TestTimeoutMessage(t *testing.T) {
	t.Parallel()
	r := &Request{Timeout: 90 * time.Second}
	if got, want := r.TimeoutMessage(), "the request did not finish within its timeout of 1m30s"; got != want {
		t.Errorf("TimeoutMessage() = %q, want %q", got, want)
	}
}

package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// object is a JSON object read case-insensitively: keys are lower-cased and
// a later duplicate replaces an earlier one, whatever its case.
type object map[string]member

// member is an object member: its name as sent and its value.
type member struct {
	name  string
	value any
}

// maxDepth bounds nesting so hostile bodies cannot exhaust the stack; real
// registry bodies nest five deep.
const maxDepth = 64

// parseJSON reads one JSON value into object, []any, string, json.Number,
// bool or nil. Errors name the byte offset of the problem.
func parseJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := parseValue(dec, 0)
	if err != nil {
		return nil, syntaxError(dec, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errorf(statusBadRequest, CodeInvalidRequestContent, "",
			"malformed JSON: unexpected data after the value at offset %d", dec.InputOffset())
	}
	return v, nil
}

func syntaxError(dec *json.Decoder, err error) *Error {
	var me *Error
	if errors.As(err, &me) {
		return me
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return errorf(statusBadRequest, CodeInvalidRequestContent, "", "malformed JSON at offset %d: %v", se.Offset, se)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errorf(statusBadRequest, CodeInvalidRequestContent, "", "malformed JSON: unexpected end of input at offset %d", dec.InputOffset())
	}
	return errorf(statusBadRequest, CodeInvalidRequestContent, "", "malformed JSON at offset %d: %v", dec.InputOffset(), err)
}

func parseValue(dec *json.Decoder, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errorf(statusBadRequest, CodeInvalidRequestContent, "", "malformed JSON: nested deeper than %d at offset %d", maxDepth, dec.InputOffset())
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			obj := object{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("object key is not a string")
				}
				v, err := parseValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				obj[strings.ToLower(k)] = member{name: k, value: v}
			}
			if _, err := dec.Token(); err != nil { // '}'
				return nil, err
			}
			return obj, nil
		case '[':
			arr := []any{}
			for dec.More() {
				v, err := parseValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			if _, err := dec.Token(); err != nil { // ']'
				return nil, err
			}
			return arr, nil
		}
		return nil, fmt.Errorf("unexpected %q", t)
	default:
		return t, nil
	}
}

// describe renders a JSON value for an error message.
func describe(v any) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("%q", t)
	case json.Number:
		return t.String()
	case bool:
		return fmt.Sprint(t)
	case object:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%v", v)
}

func typeError(path, want string, got any) *Error {
	return errorf(statusBadRequest, CodeInvalidRequestContent, path, "%s: want %s, got %s", path, want, describe(got))
}

// reader walks a parsed body, collecting the first error.
type reader struct {
	version APIVersion
	err     *Error
}

func (r *reader) fail(e *Error) {
	if r.err == nil {
		r.err = e
	}
}

// field returns obj's value for name (any case) when it is present and not
// null, and whether it is; absent or null fields mean "not given".
func field(obj object, name string) (any, bool) {
	m, ok := obj[strings.ToLower(name)]
	if !ok || m.value == nil {
		return nil, false
	}
	return m.value, true
}

func (r *reader) obj(v any, path string) (object, bool) {
	o, ok := v.(object)
	if !ok {
		r.fail(typeError(path, "an object", v))
	}
	return o, ok
}

func (r *reader) boolField(obj object, name, path string, dst *bool) {
	v, ok := field(obj, name)
	if !ok {
		return
	}
	b, ok := v.(bool)
	if !ok {
		r.fail(typeError(path, "a boolean", v))
		return
	}
	*dst = b
}

func (r *reader) stringField(obj object, name, path string, dst *string) {
	v, ok := field(obj, name)
	if !ok {
		return
	}
	s, ok := v.(string)
	if !ok {
		r.fail(typeError(path, "a string", v))
		return
	}
	*dst = s
}

// enumField matches the value case-insensitively against values and stores
// the canonical spelling.
func (r *reader) enumField(obj object, name, path string, dst *string, values ...string) {
	v, ok := field(obj, name)
	if !ok {
		return
	}
	s, ok := v.(string)
	if ok {
		for _, c := range values {
			if strings.EqualFold(s, c) {
				*dst = c
				return
			}
		}
	}
	r.fail(typeError(path, "one of "+strings.Join(values, ", "), v))
}

func (r *reader) intField(obj object, name, path string, dst *int) {
	v, ok := field(obj, name)
	if !ok {
		return
	}
	n, ok := v.(json.Number)
	if ok {
		if i, err := n.Int64(); err == nil && i >= -1<<31 && i < 1<<31 {
			*dst = int(i)
			return
		}
	}
	r.fail(typeError(path, "an integer", v))
}

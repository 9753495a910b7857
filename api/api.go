// Package api holds the ingress's HTTP contract, api/openapi.yaml, embedded
// so that the ingress serves exactly the bytes that the integration suite
// validates every request and answer against.
package api

import _ "embed"

// OpenAPIPath is where the ingress serves the document.
const OpenAPIPath = "/openapi.yaml"

// OpenAPIContentType is the media type the document is served with.
const OpenAPIContentType = "application/yaml"

//go:embed openapi.yaml
var openAPI []byte

// OpenAPI returns the OpenAPI document. The slice is a copy, so no caller
// can change what the ingress serves.
func OpenAPI() []byte {
	return append([]byte(nil), openAPI...)
}

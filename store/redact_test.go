package store

import (
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	tests := []struct {
		name, in, want string
		hasPassword    bool
	}{
		{"user-info", "postgres://app:s3cret@db:5432/ins?sslmode=verify-full",
			"postgres://app:xxxxx@db:5432/ins?sslmode=verify-full", true},
		{"password parameter", "postgres://app@db/ins?sslmode=require&password=s3cret",
			"postgres://app@db/ins?sslmode=require&password=xxxxx", true},
		{"sslpassword parameter", "postgresql://app@db/ins?sslkey=/k.pem&sslpassword=s3cret&sslmode=verify-full",
			"postgresql://app@db/ins?sslkey=/k.pem&sslpassword=xxxxx&sslmode=verify-full", true},
		{"escaped and upper-case key", "postgres://db/ins?PASS%57ORD=s3cret",
			"postgres://db/ins?PASS%57ORD=xxxxx", true},
		{"all of them", "postgres://app:s3cret@db/ins?password=s3cret2&sslpassword=s3cret3",
			"postgres://app:xxxxx@db/ins?password=xxxxx&sslpassword=xxxxx", true},
		{"unescaped '/', '?' and '@' in the password", "postgres://app:se/c?r@t@db/ins",
			"postgres://app:xxxxx@db/ins", true},
		{"several hosts", "postgres://app:s3cret@h1:5432,h2:5432/ins?target_session_attrs=read-write",
			"postgres://app:xxxxx@h1:5432,h2:5432/ins?target_session_attrs=read-write", true},
		{"no password", "postgres://app@db/ins?sslmode=disable", "postgres://app@db/ins?sslmode=disable", false},
		{"empty password", "postgres://app:@db/ins", "postgres://app:xxxxx@db/ins", false},
		{"sqlite file with '@' and ':'", "sqlite:///var/lib/a:b@c.db", "sqlite:///var/lib/a:b@c.db", false},
		{"not a URL", "app:s3cret@db", "[unparseable database URL]", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RedactURL(tt.in)
			if got != tt.want {
				t.Fatalf("RedactURL(%q)=%q, want %q", tt.in, got, tt.want)
			}
			if strings.Contains(got, "s3cret") || strings.Contains(got, "se/c") {
				t.Fatalf("RedactURL(%q)=%q still holds the password", tt.in, got)
			}
			if has := URLHasPassword(tt.in); has != tt.hasPassword {
				t.Fatalf("URLHasPassword(%q)=%v, want %v", tt.in, has, tt.hasPassword)
			}
		})
	}
}

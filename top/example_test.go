package top_test

import (
	"fmt"
	"net/url"

	"github.com/insuranceflow/insuranceflow/top"
)

// The test vector from the TOP signing documentation.
func ExampleSign() {
	params := url.Values{
		"app_key":     {"12345678"},
		"fields":      {"num_iid,title,nick,price,num"},
		"format":      {"json"},
		"method":      {"taobao.item.seller.get"},
		"num_iid":     {"11223344"},
		"session":     {"test"},
		"sign_method": {"md5"},
		"timestamp":   {"2016-01-01 12:00:00"},
		"v":           {"2.0"},
	}
	sign, err := top.Sign(params, top.Secret("helloworld"), top.SignMD5)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(sign)
	// Output: 66987CB115214E59E6EC978214934FB8
}

func ExampleParseResponse() {
	ban := top.ErrorBody(top.ErrorResponse{
		Code:    top.CodeAppCallLimited,
		Msg:     "App Call Limited",
		SubCode: "accesscontrol.limited-by-app-access-count",
		SubMsg:  "This ban will last for 17 more seconds",
	})
	o := top.ParseResponse(200, ban, false)
	fmt.Println(o.Class, o.RetryAfter)
	fmt.Println(top.ParseResponse(200, []byte(`{"call_success":false,"fail_code":"POLICY_NOT_FOUND"}`), true).Summary())
	// Output:
	// rate_limited 17s
	// rejected: POLICY_NOT_FOUND
}

func ExampleSecret() {
	s := top.Secret("app-secret")
	fmt.Printf("%v %s %q %#v\n", s, s, s, s)
	// Output: [redacted] [redacted] [redacted] [redacted]
}

package insurance_test

import (
	"errors"
	"fmt"

	"github.com/insuranceflow/insuranceflow/insurance"
)

func ExampleDecode() {
	r, err := insurance.Decode([]byte(`{"biz_id":"24010900100YSKSSG","stage":"2","status":1,` +
		`"time_of_occurrence":"2025-04-08 09:55:00","insurance_type":1}`))
	fmt.Println(r.BizID, r.Stage, r.Status, r.InsuranceType, err)

	_, err = insurance.Decode([]byte(`{"biz_id":"24010900100YSKSSG","stage":9,"status":true,"insurance_type":1.5,"colour":"red"}`))
	var ve *insurance.ValidationError
	if errors.As(err, &ve) {
		for _, p := range ve.Problems {
			fmt.Printf("%s: %s\n", p.Field, p.Message)
		}
	}
	// Output:
	// 24010900100YSKSSG underwrite success home_property <nil>
	// stage: 9 is not a stage (want 1-5: pre_insure, underwrite, insure, cancel, endorse)
	// status: must be an integer or a string holding a decimal integer, got boolean
	// time_of_occurrence: is required
	// insurance_type: must be an integer or a string holding a decimal integer, got number 1.5
	// colour: unknown field
}

func ExampleDeriveRequestID() {
	id := insurance.DeriveRequestID("24010900100YSKSSG", insurance.StagePreInsure, insurance.StatusSuccess, "2025-04-08 09:55:00")
	fmt.Println(id)

	r := insurance.Result{BizID: "24010900100YSKSSG", Stage: insurance.StagePreInsure, Status: insurance.StatusSuccess,
		TimeOfOccurrence: "2025-04-08 09:55:00", InsuranceType: insurance.TypeHomeProperty}
	fmt.Println(r.WithRequestID().RequestID == id)
	// Output:
	// r-c9f1fab8da6582cbc4e245d038944f01
	// true
}

func ExampleResult_APIJSON() {
	r := insurance.Result{BizID: "24010900100YSKSSG", Stage: insurance.StageInsure, Status: insurance.StatusSuccess,
		TimeOfOccurrence: "2025-04-08 09:55:00", InsuranceType: insurance.TypeHomeProperty, PolicyNumber: "12345678A"}
	s, err := r.APIJSON()
	fmt.Println(s, err)
	// Output:
	// {"biz_id":"24010900100YSKSSG","policy_number":"12345678A","stage":3,"status":1,"time_of_occurrence":"2025-04-08 09:55:00","insurance_type":1} <nil>
}

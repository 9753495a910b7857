package workflows

// ContractErrorTypes returns every ApplicationError type of the workflow
// contract — each Reason* and Error* constant — in a fixed order. It exists
// so that every consumer that classifies errors (policyclient.Classify and
// the tables built on it) can prove, in a test, that it knows all of them:
// a type missing from a classifier would fall through to "internal".
// TestContractErrorTypesListsEveryConstant fails when a constant is added
// to the package without being added here.
func ContractErrorTypes() []string {
	return []string{
		ReasonInvalidRequest,
		ReasonIllegalTransition,
		ReasonInsuranceTypeMismatch,
		ReasonPolicyNumberMismatch,
		ReasonTimeWentBackwards,
		ReasonNoParkedCallback,
		ReasonSeqMismatch,
		ReasonOperatorActionPending,
		ReasonOperatorRepeated,
		ReasonDuplicate,
		ReasonImportOrder,
		ReasonNothingToImport,
		ErrorStoreUnavailable,
		ErrorStoreConflict,
		ErrorTypeInvalidInput,
	}
}

package client

// SetClaimCode sets the code that claims the node while it has no owner.
func (api *API) SetClaimCode(code string) {
	api.claimMu.Lock()
	api.claimCode = code
	api.claimMu.Unlock()
}

// ClaimCode implements webui.Backend: the code that claims this node, or
// "" once it has its owner.
func (api *API) ClaimCode() string {
	api.claimMu.Lock()
	defer api.claimMu.Unlock()
	return api.claimCode
}

// claimed voids the claim code once the first account exists.
func (api *API) claimed() {
	api.claimMu.Lock()
	api.claimCode = ""
	api.claimMu.Unlock()
	if api.cfg.OnClaimed != nil {
		api.cfg.OnClaimed()
	}
}

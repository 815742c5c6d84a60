"""shinyo node daemon (arrives with the node issue)."""

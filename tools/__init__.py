"""The shinyo command-line tools."""

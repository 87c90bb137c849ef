"""Chains: ordered steps (SIM → RECO) launched as linked bunches, their constraints, view, clone, sweep and export."""

"""Training data in the IPAD format: the manifest, synthetic generation (``ipad-qc synth``) and loading."""

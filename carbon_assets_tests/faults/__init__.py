"""Helpers of the fault and bad-input suites (test_fault_recovery.py, test_bad_inputs.py).

run_pipeline.py is the script a test runs in a subprocess and kills; common.py holds what both
suites share: the warehouse dump, the lake's integrity checks and the fault matrix.
"""

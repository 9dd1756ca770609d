"""The scale bench (bench/operator_scale.py): kwok-backed simulated cluster helpers."""

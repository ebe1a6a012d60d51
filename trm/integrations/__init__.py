"""Thinking rewards inside other trainers than verl: :mod:`trm.integrations.trl` (TRL's GRPOTrainer)."""

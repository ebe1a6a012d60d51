"""verl GRPO integration: compose and validate the training config (`trm rl check` = `train.sh --dry-run`)."""

"""Standard vs golden on a prompt set (`evaluation.evaluate`): paired statistics (`stats`),
per-prompt diversity (`diversity`) and the report (`report`)."""

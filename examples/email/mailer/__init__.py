"""mailer: a small transactional-email service (an example app under the chaos harness)."""

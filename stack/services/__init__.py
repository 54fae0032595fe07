"""The reference dispatch services (API, scheduler, sender workers, provider sink) and their deployment."""

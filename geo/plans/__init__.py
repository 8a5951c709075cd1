"""Grid plans: redraw boundaries as drafts, validate, preview the impact, apply, suggest."""

"""The interface rules of spec section 6: pure functions of (record, state view, as-of)."""

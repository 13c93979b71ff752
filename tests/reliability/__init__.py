"""The fault suite (issue 12): every bad input and fault gets one sentence and loses nothing."""

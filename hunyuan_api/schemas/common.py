"""What the schemas of every resource share."""

# The message of every range check, so each names the allowed range and the value given.
RANGE_ERROR = "Must be between {min} and {max}; got {input}."

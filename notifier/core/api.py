# Ids in URLs: at most 18 digits, so that any id that matches fits in int64 and an absurd one
# is a 404 instead of an overflow in the database driver.
ID_PATTERN = r"[0-9]{1,18}"

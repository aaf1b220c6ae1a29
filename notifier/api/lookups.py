"""How the API's URLs name one object: by a numeric id, which then goes on every log line of
the request."""

from notifier.core import logging

# Ids in URLs: at most 18 digits, so that any id that matches fits in int64 and an absurd one
# is a 404 instead of an overflow in the database driver.
ID_PATTERN = r"[0-9]{1,18}"


class ObjectById:
    """A viewset mixin: objects are looked up by `ID_PATTERN`, and the id of the one a request
    is about is bound (as `log_id_name`) to its every log line."""

    lookup_value_regex = ID_PATTERN
    log_id_name = ""

    def get_object(self):
        obj = super().get_object()
        logging.bind(**{self.log_id_name: obj.pk})
        return obj

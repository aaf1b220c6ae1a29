from notifier.core import logging

# Ids in URLs: at most 18 digits, so that any id that matches fits in int64 and an absurd one
# is a 404 instead of an overflow in the database driver.
ID_PATTERN = r"[0-9]{1,18}"


class LogsObjectId:
    """A view mixin: the id of the object a request is about goes on its every log line."""

    log_id_name = ""

    def get_object(self):
        obj = super().get_object()
        logging.bind(**{self.log_id_name: obj.pk})
        return obj

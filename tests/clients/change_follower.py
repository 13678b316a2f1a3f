"""A consumer of Portcullis's change stream (`Changes/Watch`) to copy: it
follows the stream, hands each change to a handler, persists the token of
every message it has handled, and resumes from that token after any
disconnect, restart or server shutdown, so it sees every change once, in
commit order.

The rule that makes it exact: persist a message's token only after the
message is handled (for a decision cache: after forgetting what the change
invalidates). After a crash the consumer resumes from the last persisted
token and sees again at most the changes it had not finished handling.
"""

import os
import tempfile
import time

import grpc

from portcullis.v1 import watch_pb2, watch_pb2_grpc

# How long to wait before reconnecting after the server went away.
RECONNECT_DELAY = 0.2


class ChangeFollower:
    def __init__(self, channel, bearer, token_file, tenant_id="", kinds=()):
        self.stub = watch_pb2_grpc.ChangesStub(channel)
        self.bearer = bearer
        self.token_file = token_file
        self.tenant_id = tenant_id
        self.kinds = list(kinds)

    def token(self):
        """The token of the last handled message, or "" to start from now."""
        try:
            with open(self.token_file) as f:
                return f.read().strip()
        except FileNotFoundError:
            return ""

    def persist(self, token):
        """Atomically: a crash leaves the old token or the new one."""
        directory = os.path.dirname(os.path.abspath(self.token_file))
        with tempfile.NamedTemporaryFile("w", dir=directory, delete=False) as f:
            f.write(token)
            f.flush()
            os.fsync(f.fileno())
        os.replace(f.name, self.token_file)

    def open(self):
        request = watch_pb2.WatchRequest(
            tenant_id=self.tenant_id, kinds=self.kinds, resume_token=self.token()
        )
        return self.stub.Watch(request, metadata=self.bearer)

    def follow(self, handle, until=lambda: False):
        """Calls `handle(change)` for each change until `until()` is true
        after a message. Reconnects when the stream ends (the server shut
        down, or this consumer fell behind: both say where to resume, which
        is the persisted token). A token past the retention is fatal: the
        consumer must rebuild its state from the listings, then start over
        with no token."""
        while True:
            stream = self.open()
            try:
                for message in stream:
                    if message.HasField("change"):
                        handle(message.change)
                    self.persist(message.token)
                    if until():
                        stream.cancel()
                        return
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.OUT_OF_RANGE:
                    raise
                if error.code() not in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.ABORTED,
                    grpc.StatusCode.CANCELLED,
                ):
                    raise
            time.sleep(RECONNECT_DELAY)


def invalidation(change):
    """What a decision cache forgets for a change: (capabilities or None
    for all, subtree root or None for the whole tenant, user ids or None
    for anyone). A cached decision (user, capability, node) goes when all
    three match: the capability is among them, the node is at or below the
    root, the user is among them."""
    effect = change.effect
    capabilities = None if effect.all_capabilities else set(effect.capabilities)
    subtree = effect.subtree_root_id or None
    users = set(effect.user_ids) or None
    return capabilities, subtree, users

"""A Python client of Portcullis, its code generated from proto/ with
grpcio-tools (see the README's "Clients in other languages"), run by
.ci/run against `portcullis dev`: exchange the demo service's secret, check
an allowed and a denied request, list, read an error's details, and follow
the change stream across a disconnect (`change_follower.py`).

    python3 -m grpc_tools.protoc -I proto --python_out=gen --grpc_python_out=gen proto/portcullis/v1/*.proto
    PYTHONPATH=gen python3 tests/clients/python_client.py 127.0.0.1:50051 <demo secret>
"""

import os
import sys
import tempfile

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from change_follower import ChangeFollower, invalidation
from portcullis.v1 import (
    administration_pb2,
    administration_pb2_grpc,
    authorization_pb2,
    authorization_pb2_grpc,
    common_pb2,
    service_credentials_pb2,
    service_credentials_pb2_grpc,
)

TENANT = "d0000000-0000-4000-8000-000000000001"
ALICE = "d0000000-0000-4000-8003-000000000001"
BOB = "d0000000-0000-4000-8003-000000000002"
PARIS = "d0000000-0000-4000-8001-000000000004"


def subject(user):
    return common_pb2.Subject(user=common_pb2.UserRef(tenant_id=TENANT, user_id=user))


def main(addr, secret):
    channel = grpc.insecure_channel(addr)
    exchanged = service_credentials_pb2_grpc.ServiceCredentialsStub(channel).ExchangeServiceCredential(
        service_credentials_pb2.ExchangeServiceCredentialRequest(service_key="demo-gateway", secret=secret)
    )
    bearer = [("authorization", f"Bearer {exchanged.access_token}")]
    authz = authorization_pb2_grpc.AuthorizationStub(channel)

    def check(user, node=PARIS):
        return authz.CheckCapability(
            authorization_pb2.CheckCapabilityRequest(
                subject=subject(user), capability="payment.ledger.download", org_node_id=node
            ),
            metadata=bearer,
        )

    allowed = check(ALICE)
    assert allowed.allowed and allowed.reason == authorization_pb2.ALLOWED, allowed
    denied = check(BOB)
    assert not denied.allowed and denied.reason == authorization_pb2.NO_MATCHING_ASSIGNMENT, denied

    listed = authz.ListVisibleOrgNodes(
        authorization_pb2.ListVisibleOrgNodesRequest(subject=subject(BOB), page_size=10), metadata=bearer
    )
    labels = [node.label for node in listed.nodes]
    assert "Paris Treasury" in labels, labels

    try:
        check(ALICE, node="not-a-node")
        raise AssertionError("a malformed node id was accepted")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
        status = rpc_status.from_call(error)
        found = {}
        for detail in status.details:
            for kind in (error_details_pb2.BadRequest, error_details_pb2.ErrorInfo):
                if detail.Is(kind.DESCRIPTOR):
                    message = kind()
                    detail.Unpack(message)
                    found[kind.__name__] = message
        violations = [v.field for v in found["BadRequest"].field_violations]
        assert violations == ["org_node_id"], violations
        info = found["ErrorInfo"]
        assert (info.reason, info.domain) == ("INVALID_ARGUMENT", "portcullis.dev"), info

    followed = follow_changes(channel, bearer)

    print(
        "the Python client works: exchanged the demo secret, alice allowed, bob denied "
        f"(NO_MATCHING_ASSIGNMENT), bob sees {len(labels)} nodes, BadRequest names {violations[0]}, "
        f"followed {followed} across a disconnect"
    )


def follow_changes(channel, bearer):
    """Follows the stream, makes a change, stops; makes another while away;
    resumes from the persisted token and sees it, and nothing twice."""
    admin = administration_pb2_grpc.AdministrationStub(channel)
    token_file = os.path.join(tempfile.mkdtemp(), "watch.token")
    follower = ChangeFollower(channel, bearer, token_file, kinds=["org_node"])
    seen = []

    def create(label):
        return admin.CreateOrgNode(
            administration_pb2.CreateOrgNodeRequest(
                tenant_id=TENANT, parent_org_node_id=PARIS, node_type="team", label=label
            ),
            metadata=bearer,
        ).org_node_id

    # Start from now: persist the first token (a checkpoint) before writing.
    stream = follower.open()
    follower.persist(next(iter(stream)).token)
    stream.cancel()
    first = create("Watched from Python")
    follower.follow(seen.append, until=lambda: len(seen) == 1)
    second = create("Made while the consumer was away")
    follower.follow(seen.append, until=lambda: len(seen) == 2)
    assert [c.entity_id for c in seen] == [first, second], seen
    capabilities, subtree, users = invalidation(seen[0])
    assert capabilities is None and subtree == first, (capabilities, subtree)
    return f"{len(seen)} changes"


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

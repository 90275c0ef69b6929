"""Drives the emulator with python-gitlab (a real third-party client).

Usage: python_gitlab.py URL ROOT_TOKEN APPROVER_TOKEN PROJECT_PATH SHA
Exits non-zero with a message on the first mismatch.
"""
import sys

import gitlab
from gitlab import exceptions as exc


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def main():
    url, root_tok, approver_tok, path, sha = sys.argv[1:6]
    gl = gitlab.Gitlab(url, private_token=root_tok)
    project = gl.projects.get(path, lazy=True)

    # The first list meets an injected 429 with Retry-After: 1; python-gitlab obeys and retries.
    check(project.deployments.list(get_all=True) == [], "empty list")

    dep = project.deployments.create(
        {"environment": "production", "sha": sha, "ref": "main", "tag": False, "status": "running"}
    )
    check(dep.status == "running" and dep.iid == 1, f"created {dep.attributes}")
    check(dep.pending_approval_count == 1, "waiting for one approval")
    check(dep.environment["name"] == "production", "environment entity")

    try:
        dep.approval(status="approved")
        check(False, "self-approval must fail")
    except exc.GitlabDeploymentApprovalError as e:
        check(e.response_code == 400, f"self-approval code {e.response_code}")
        check("own deployment" in str(e.error_message), f"self-approval message {e.error_message}")

    approver = gitlab.Gitlab(url, private_token=approver_tok)
    adep = approver.projects.get(path, lazy=True).deployments.get(dep.id)
    approval = adep.approval(status="approved", comment="ship it")
    check(approval["status"] == "approved" and approval["comment"] == "ship it", f"approval {approval}")
    check(approval["user"]["username"] == "approver", "approval user")

    dep.status = "success"
    dep.save()
    dep = project.deployments.get(dep.id)
    check(dep.status == "success" and dep.pending_approval_count == 0, f"after approval {dep.attributes}")
    check(len(dep.approval_summary["rules"]) == 1, "approval summary")
    mrs = dep.mergerequests.list(get_all=True)
    check(len(mrs) == 1 and mrs[0].state == "merged", f"linked merge requests {mrs}")

    # Illegal transition: success -> success.
    try:
        dep.status = "success"
        dep.save()
        check(False, "success -> success must fail")
    except exc.GitlabUpdateError as e:
        check(e.response_code == 400, f"transition code {e.response_code}")
        check(e.error_message == {"status": ['cannot transition via "succeed"']}, f"transition msg {e.error_message}")

    for _ in range(4):
        project.deployments.create(
            {"environment": "staging", "sha": sha[:10], "ref": "main", "tag": False, "status": "failed"}
        )
    everything = project.deployments.list(per_page=2, get_all=True)
    check([d.iid for d in everything] == [1, 2, 3, 4, 5], f"get_all follows Link: {[d.iid for d in everything]}")
    it = project.deployments.list(per_page=2, iterator=True)
    check(it.total == 5 and it.total_pages == 3, f"iterator totals {it.total} {it.total_pages}")
    check(len(list(it)) == 5, "iterator yields all")
    staging = project.deployments.list(environment="staging", status="failed", get_all=True)
    check(len(staging) == 4 and staging[0].sha == sha[:10], "filters, sha stored as sent")
    newest = project.deployments.list(order_by="id", sort="desc", per_page=1, get_all=False)
    check(newest[0].iid == 5, "sort desc")

    try:
        project.deployments.list(order_by="ref", get_all=True)
        check(False, "order_by=ref must fail")
    except exc.GitlabListError as e:
        check(e.response_code == 400 and "order_by does not have a valid value" in str(e.error_message), str(e))

    try:
        project.deployments.create(
            {"environment": "x", "sha": "0" * 40, "ref": "main", "tag": False, "status": "running"}
        )
        check(False, "unknown sha must fail")
    except exc.GitlabCreateError as e:
        check(e.response_code == 400 and e.error_message == {"sha": ["The commit does not exist"]}, str(e))

    try:
        gitlab.Gitlab(url, private_token="nope").projects.get(path, lazy=True).deployments.list(get_all=True)
        check(False, "bad token must fail")
    except exc.GitlabAuthenticationError as e:
        check(e.response_code == 401, "401")

    try:
        project.deployments.get(424242)
        check(False, "missing deployment")
    except exc.GitlabGetError as e:
        check(e.response_code == 404 and e.error_message == "404 Not found", str(e))

    # DELETE through the raw HTTP helper (the manager has no delete mixin in every version).
    gl.http_delete(f"/projects/{project.encoded_id}/deployments/{everything[1].id}")
    check(len(project.deployments.list(get_all=True)) == 4, "deleted")
    print("python-gitlab", gitlab.__version__, "OK")


if __name__ == "__main__":
    main()

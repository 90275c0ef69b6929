//! The approval gate's GitOps examples (examples/gitops/) held to the engines' real behaviour:
//! - Argo CD: health.lua passes its own health_test.yaml, run as Argo CD runs a health check
//!   from argocd-cm (gopher-lua, Lua 5.1, only the base libraries), and argocd-cm.yaml carries
//!   that same script;
//! - Flux: the gate Kustomization's healthCheckExprs, evaluated by Flux's own status reader
//!   (fluxcd/pkg/runtime/cel, the code kustomize-controller runs), give the same verdict on the
//!   same status objects;
//! - those status objects (testdata/) are GitlabDeployments in the operator's own types, and
//!   the CRD's schema accepts their spec and status;
//! - the wiring: Argo CD's app copies the image tag into spec.sha and syncs the gate first;
//!   Flux's app waits on the gate and image automation bumps both in one commit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use gitlab_deployment_operator::api::GitlabDeployment;
use harness::gitops::{
    argocd_health, argocd_health_dir, flux_health, flux_health_tool, flux_kustomizations,
    lua_health_tool, repo, run_tool,
};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

fn yaml_documents(path: &Path) -> Vec<Value> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml_file(path: &Path) -> Value {
    let mut docs = yaml_documents(path);
    assert_eq!(docs.len(), 1, "{}", path.display());
    docs.remove(0)
}

/// The cases of health_test.yaml: input path → (status, message).
fn argocd_cases() -> BTreeMap<String, (String, String)> {
    let tests = yaml_file(&argocd_health_dir().join("health_test.yaml"));
    tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["inputPath"].as_str().unwrap().to_owned(),
                (
                    t["healthStatus"]["status"].as_str().unwrap().to_owned(),
                    t["healthStatus"]["message"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                ),
            )
        })
        .collect()
}

fn testdata() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(argocd_health_dir().join("testdata"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn relative(path: &Path) -> String {
    path.strip_prefix(argocd_health_dir())
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn argocd_health_check_passes_its_test_cases_as_argo_cd_runs_them() {
    let (code, lines, stderr) = run_tool(
        Command::new(lua_health_tool())
            .arg("test")
            .arg(argocd_health_dir()),
    );
    let failed: Vec<&Value> = lines.iter().filter(|l| l["ok"] != true).collect();
    assert!(
        code == Some(0) && failed.is_empty(),
        "health.lua failed its cases ({code:?}): {stderr}\n{failed:#?}"
    );
    let cases = argocd_cases();
    assert_eq!(lines.len(), cases.len(), "one result per case");
    // Every fixture is a case, and each health status the script gives is covered.
    let used: BTreeSet<&str> = cases.keys().map(String::as_str).collect();
    for file in testdata() {
        let rel = relative(&file);
        assert!(used.contains(rel.as_str()), "{rel} is in no case");
    }
    let statuses: BTreeSet<&str> = cases.values().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        statuses,
        BTreeSet::from(["Degraded", "Healthy", "Progressing"])
    );
}

#[test]
fn the_health_runner_catches_a_wrong_answer_and_argocd_cm_limits() {
    // The check above is only worth something if a wrong expectation fails it...
    let dir = argocd_health_dir();
    let (code, lines, _) = run_tool(
        Command::new(lua_health_tool())
            .arg("eval")
            .arg(dir.join("health.lua"))
            .arg(format!(
                "{}=Healthy",
                dir.join("testdata/gate-rejected.yaml").display()
            )),
    );
    assert_eq!(code, Some(1), "{lines:?}");
    assert_eq!(lines[0]["health"]["status"], "Degraded");
    // ...and if it runs scripts as argocd-cm does, without Lua's string library.
    let tmp = harness::tempdir("lua-libs");
    let script = tmp.path().join("health.lua");
    std::fs::write(
        &script,
        "return {status = string.format('%s', 'Healthy')}\n",
    )
    .unwrap();
    let (code, lines, _) = run_tool(
        Command::new(lua_health_tool())
            .arg("eval")
            .arg(&script)
            .arg(dir.join("testdata/ready.yaml")),
    );
    assert_eq!(code, Some(2), "{lines:?}");
    assert!(
        lines[0]["problem"].as_str().unwrap().contains("format"),
        "{lines:?}"
    );
}

#[test]
fn argocd_cm_carries_the_tested_script() {
    let cm = yaml_file(&repo().join("examples/gitops/argocd/approval-gate/argocd-cm.yaml"));
    assert_eq!(cm["metadata"]["name"], "argocd-cm");
    let script = std::fs::read_to_string(argocd_health_dir().join("health.lua")).unwrap();
    assert_eq!(
        cm["data"]["resource.customizations.health.gitlab-operator.io_GitlabDeployment"]
            .as_str()
            .unwrap(),
        script,
        "argocd-cm.yaml and health.lua differ"
    );
    assert!(
        cm["data"]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.starts_with("resource.customizations.useOpenLibs")),
        "the script must run without Lua's standard libraries"
    );
}

/// What Flux's kustomize-controller must conclude for each gate-mode fixture.
const FLUX_VERDICTS: [(&str, &str); 13] = [
    ("gate-pending.yaml", "InProgress"),
    ("gate-deployment-pending.yaml", "InProgress"),
    ("gate-no-approved-condition.yaml", "InProgress"),
    ("gate-stale-generation.yaml", "InProgress"),
    ("gate-stale-approved-condition.yaml", "InProgress"),
    ("gate-sha-mismatch.yaml", "InProgress"),
    ("gate-approved.yaml", "Current"),
    ("gate-not-required.yaml", "Current"),
    ("gate-approved-rolled-out.yaml", "Current"),
    ("gate-rejected.yaml", "Failed"),
    ("gate-stalled.yaml", "Failed"),
    ("gate-approved-rollout-failed.yaml", "Failed"),
    // Flux cannot evaluate `status.…` on an object without status: kstatus reads that as
    // Unknown and kustomize-controller keeps polling it (it never counts as Current or Failed).
    ("gate-no-status.yaml", "Unknown"),
];

#[test]
fn flux_health_check_exprs_give_the_verdict_with_fluxs_own_code() {
    let dir = argocd_health_dir().join("testdata");
    let mut cmd = Command::new(flux_health_tool());
    cmd.arg(flux_kustomizations());
    for (file, want) in FLUX_VERDICTS {
        cmd.arg(format!("{}={want}", dir.join(file).display()));
    }
    let (code, lines, stderr) = run_tool(&mut cmd);
    let wrong: Vec<&Value> = lines.iter().filter(|l| l["ok"] != true).collect();
    assert!(
        code == Some(0) && wrong.is_empty(),
        "flux-health ({code:?}): {stderr}\n{wrong:#?}"
    );
    assert_eq!(lines.len(), FLUX_VERDICTS.len());
    // Only the object without status makes an expression fail to evaluate.
    for line in &lines {
        let unknown = line["status"] == "Unknown";
        assert_eq!(
            line["error"]
                .as_str()
                .is_some_and(|e| e.contains("no such attribute")),
            unknown,
            "{line}"
        );
    }
    // Every gate-mode fixture has a Flux verdict.
    let covered: BTreeSet<&str> = FLUX_VERDICTS.iter().map(|(f, _)| *f).collect();
    for file in testdata() {
        let name = file.file_name().unwrap().to_str().unwrap().to_owned();
        if name.starts_with("gate-") {
            assert!(
                covered.contains(name.as_str()),
                "{name} has no Flux verdict"
            );
        }
    }
    // And a wrong expectation fails.
    let (code, _, _) = run_tool(
        Command::new(flux_health_tool())
            .arg(flux_kustomizations())
            .arg(format!(
                "{}=Current",
                dir.join("gate-pending.yaml").display()
            )),
    );
    assert_eq!(code, Some(1));
}

#[test]
fn argo_cd_and_flux_agree_on_every_gate_fixture() {
    // One verdict (docs/approvals.md), two engines: Healthy ⇔ Current, Degraded ⇔ Failed,
    // Progressing ⇔ InProgress (or Unknown, Flux's reading of an object without status).
    let dir = argocd_health_dir().join("testdata");
    let objects: Vec<Value> = FLUX_VERDICTS
        .iter()
        .map(|(f, _)| yaml_file(&dir.join(f)))
        .collect();
    let argo = argocd_health(&objects);
    let flux = flux_health(&objects);
    for (((file, _), a), (f, _)) in FLUX_VERDICTS.iter().zip(&argo).zip(&flux) {
        let expected_flux: &[&str] = match a["status"].as_str().unwrap() {
            "Healthy" => &["Current"],
            "Degraded" => &["Failed"],
            "Progressing" => &["InProgress", "Unknown"],
            other => panic!("{file}: Argo CD health {other}"),
        };
        assert!(
            expected_flux.contains(&f.as_str()),
            "{file}: Argo CD {a}, Flux {f}"
        );
    }
}

/// The paths of `fixture` that are not in `typed` with the same value (serializing through the
/// operator's types adds defaults, so `typed` may hold more).
fn fields_missing_from(fixture: &Value, typed: &Value, at: &str, out: &mut Vec<String>) {
    match (fixture, typed) {
        (Value::Object(f), Value::Object(t)) => {
            for (k, v) in f {
                match t.get(k) {
                    Some(tv) => fields_missing_from(v, tv, &format!("{at}.{k}"), out),
                    None => out.push(format!("{at}.{k}")),
                }
            }
        }
        (Value::Array(f), Value::Array(t)) if f.len() == t.len() => {
            for (i, (fv, tv)) in f.iter().zip(t).enumerate() {
                fields_missing_from(fv, tv, &format!("{at}[{i}]"), out);
            }
        }
        (f, t) if f == t => {}
        _ => out.push(at.to_owned()),
    }
}

/// Drop what the API server sets on its own (so a fixture can be created).
fn as_new_object(obj: &Value) -> Value {
    let mut new = obj.clone();
    let md = new["metadata"].as_object_mut().unwrap();
    for key in ["generation", "creationTimestamp", "namespace"] {
        md.remove(key);
    }
    new.as_object_mut().unwrap().remove("status");
    new
}

#[tokio::test]
async fn fixtures_are_gitlab_deployments_the_crd_accepts() {
    let env = harness::Env::start().await;
    let api: Api<GitlabDeployment> = env.glds();
    for file in testdata() {
        let rel = relative(&file);
        let obj = yaml_file(&file);
        // The operator's own types read every field (a misspelt one would be dropped).
        let typed: GitlabDeployment = serde_json::from_value(obj.clone())
            .unwrap_or_else(|e| panic!("{rel}: not a GitlabDeployment: {e}"));
        let mut unknown = Vec::new();
        fields_missing_from(
            &obj,
            &serde_json::to_value(&typed).unwrap(),
            "",
            &mut unknown,
        );
        assert!(
            unknown.is_empty(),
            "{rel}: fields the operator's types do not have: {unknown:?}"
        );
        // The CRD's schema and CEL rules take its spec, and its status through the status
        // subresource, both with strict field validation (one object per fixture).
        let name = file.file_stem().unwrap().to_str().unwrap();
        let mut new = as_new_object(&obj);
        new["metadata"]["name"] = json!(name);
        let params = PatchParams::apply("gitops-health-test")
            .force()
            .validation_strict();
        api.patch(name, &params, &Patch::Apply(&new))
            .await
            .unwrap_or_else(|e| panic!("{rel}: spec refused: {e}"));
        if let Some(status) = obj.get("status") {
            api.patch_status(
                name,
                &PatchParams::default().validation_strict(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await
            .unwrap_or_else(|e| panic!("{rel}: status refused: {e}"));
        }
    }
}

fn sync_wave(obj: &Value) -> i64 {
    obj["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
        .as_str()
        .map_or(0, |w| w.parse().unwrap())
}

/// (the GitlabDeployment's spec.sha, the Deployment's image tag) of a rendered app.
fn sha_and_tag(objects: &[Value]) -> (String, String) {
    let find = |kind: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {objects:#?}"))
    };
    let image = find("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned();
    (
        find("GitlabDeployment")["spec"]["sha"]
            .as_str()
            .unwrap()
            .to_owned(),
        image.rsplit_once(':').unwrap().1.to_owned(),
    )
}

#[test]
fn argocd_gate_app_names_the_revision_once_and_syncs_the_gate_first() {
    let app = repo().join("examples/gitops/argocd/approval-gate/app");
    let objects = harness::kustomize(&app);
    let (sha, tag) = sha_and_tag(&objects);
    assert_eq!(sha, tag, "spec.sha is the image tag");
    let gate = objects
        .iter()
        .find(|o| o["kind"] == "GitlabDeployment")
        .unwrap();
    assert_eq!(gate["spec"]["approval"]["gate"], true);
    for other in objects.iter().filter(|o| o["kind"] != "GitlabDeployment") {
        assert!(
            sync_wave(gate) < sync_wave(other),
            "{} is not in a later wave than the gate",
            other["kind"]
        );
    }
    // A new tag (what `kustomize edit set image` or Argo CD Image Updater writes) moves both.
    let tmp = harness::tempdir("argocd-gate-app");
    for entry in std::fs::read_dir(&app).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let text = if path.ends_with("kustomization.yaml") {
            let bumped = text.replace(
                &format!("newTag: {tag}"),
                "newTag: 89abcdef0123456789abcdef0123456789abcdef",
            );
            assert_ne!(bumped, text, "kustomization.yaml sets the tag with newTag");
            bumped
        } else {
            text
        };
        std::fs::write(tmp.path().join(path.file_name().unwrap()), text).unwrap();
    }
    let (sha, tag) = sha_and_tag(&harness::kustomize(tmp.path()));
    assert_eq!(
        (sha.as_str(), tag.as_str()),
        (
            "89abcdef0123456789abcdef0123456789abcdef",
            "89abcdef0123456789abcdef0123456789abcdef"
        )
    );
}

#[test]
fn flux_app_waits_on_the_gate_and_image_automation_moves_both() {
    let root = repo().join("examples/gitops/flux/approval-gate");
    let ks = yaml_documents(&root.join("kustomizations.yaml"));
    let by_name = |name: &str| {
        ks.iter()
            .find(|k| k["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no Kustomization {name}"))
    };
    let (gate, app) = (by_name("web-gate"), by_name("web"));
    assert_eq!(app["spec"]["dependsOn"], json!([{"name": "web-gate"}]));
    // dependsOn also waits for the gate to be at the app's revision only with the same source.
    assert_eq!(gate["spec"]["sourceRef"], app["spec"]["sourceRef"]);
    assert_eq!(gate["spec"]["wait"], true);
    assert_eq!(
        gate["spec"]["healthCheckExprs"][0]["apiVersion"],
        "gitlab-operator.io/v1alpha1"
    );
    // The paths name gate/ and app/, which hold the GitlabDeployment and the workload.
    for (k, dir, kind) in [
        (gate, "gate", "GitlabDeployment"),
        (app, "app", "Deployment"),
    ] {
        assert!(
            k["spec"]["path"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/{dir}")),
            "{k}"
        );
        let objects = harness::kustomize(&root.join(dir));
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0]["kind"], kind);
    }
    // One image policy sets both: the tag in the Deployment, the same tag as spec.sha.
    let gld = std::fs::read_to_string(root.join("gate/gitlabdeployment.yaml")).unwrap();
    let deployment = std::fs::read_to_string(root.join("app/deployment.yaml")).unwrap();
    assert!(gld.contains(r#"# {"$imagepolicy": "flux-system:web:tag"}"#));
    assert!(deployment.contains(r#"# {"$imagepolicy": "flux-system:web"}"#));
    let objects = [
        harness::kustomize(&root.join("gate")).remove(0),
        harness::kustomize(&root.join("app")).remove(0),
    ];
    let (sha, tag) = sha_and_tag(&objects);
    assert_eq!(sha, tag);
}

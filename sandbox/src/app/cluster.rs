//! `sandbox cluster …`: kind clusters for the Kubernetes backend (see [`crate::cluster`]).

use std::time::Instant;

use super::{AppError, require_root};
use crate::cluster::{self, ClusterError, Layout};

/// `cluster image`: builds the node image (and kind, kubectl) unless cached.
pub fn cluster_image() -> Result<(), AppError> {
    require_root("cluster image")?;
    let image = cluster::build_image(&mut |line| println!("{line}"))?;
    if image.is_empty() {
        return Err(AppError::Failed("the builder named no image".into()));
    }
    Ok(())
}

/// `cluster create`: a cluster of `layout`, named `sbx-<name>` (default: the layout's name).
pub fn cluster_create(layout: &str, name: Option<&str>) -> Result<(), AppError> {
    require_root("cluster create")?;
    let layout = Layout::named(layout).ok_or_else(|| ClusterError::UnknownLayout(layout.into()))?;
    let name = cluster::cluster_name(name.unwrap_or(layout.name))?;
    let started = Instant::now();
    let created = cluster::create(layout, &name, &mut |line| println!("{line}"))?;
    println!(
        "Cluster {} is ready ({:.1} s).\n  export KUBECONFIG={}",
        created.name,
        started.elapsed().as_secs_f64(),
        created.kubeconfig.display()
    );
    if !layout.cni {
        println!("  Its nodes stay NotReady until a CNI is applied.");
    }
    Ok(())
}

pub fn cluster_list() -> Result<(), AppError> {
    require_root("cluster list")?;
    let all = cluster::list();
    if all.is_empty() {
        println!("No clusters made by sandbox.");
    }
    for c in all {
        let nodes: Vec<String> = c
            .nodes
            .iter()
            .map(|n| format!("{} ({})", n.name, n.status))
            .collect();
        println!(
            "{}  layout {}  nodes: {}  kubeconfig: {}",
            c.name,
            c.layout,
            if nodes.is_empty() {
                "none".to_string()
            } else {
                nodes.join(", ")
            },
            c.kubeconfig.display()
        );
    }
    Ok(())
}

pub fn cluster_delete(name: Option<&str>, all: bool) -> Result<(), AppError> {
    require_root("cluster delete")?;
    let reports = if all {
        cluster::delete_all()
    } else {
        let name = cluster::cluster_name(name.unwrap_or_default())?;
        if !cluster::ours().contains(&name) {
            return Err(ClusterError::NotFound(name).into());
        }
        vec![cluster::delete(&name)]
    };
    if reports.is_empty() {
        println!("No clusters made by sandbox.");
    }
    let mut bad = 0;
    for r in &reports {
        if r.leftovers.is_empty() {
            println!(
                "Cluster {} is deleted ({:.1} s); nothing of it is left.",
                r.name,
                r.took.as_secs_f64()
            );
        } else {
            bad += 1;
            println!("Cluster {} is deleted but these remain:", r.name);
            for l in &r.leftovers {
                println!("  {l}");
            }
        }
    }
    if bad > 0 {
        return Err(AppError::Failed(format!(
            "{bad} cluster(s) left something behind"
        )));
    }
    Ok(())
}

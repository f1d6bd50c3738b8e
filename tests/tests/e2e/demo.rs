//! `fedctl demo` runs end to end, shows each step with measured values,
//! exits 0, and leaves no process or folder behind — twice in a row. Its
//! canary step splits requests by the route: every `x-canary: true`
//! request and about 10 % of the others reach west.

use std::process::Command;

use fedmesh_tests::bin;

#[test]
fn demo_runs_twice_in_a_row_and_cleans_up() {
    for round in 1..=2 {
        let out = Command::new(bin("fedctl"))
            .arg("demo")
            .output()
            .expect("run demo");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "round {round} failed:\n{stdout}\n{stderr}"
        );
        for step in 1..=9 {
            assert!(
                stdout.contains(&format!("[{step}/9]")),
                "round {round} lacks step {step}:\n{stdout}"
            );
        }
        assert!(
            stdout.contains("hello.demo.svc.clusterset.local. A 127."),
            "{stdout}"
        );
        assert!(
            stdout.contains("answered by: hello from east, hello from east"),
            "{stdout}"
        );
        assert!(stdout.contains("first answer from west"), "{stdout}");
        assert!(
            stdout.contains("next five answered by: hello from west"),
            "{stdout}"
        );
        assert!(stdout.contains("east answers again"), "{stdout}");
        assert!(
            stdout.contains("with x-canary: true, 5 of 5 answered by west"),
            "{stdout}"
        );
        let to_west: u32 = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("without it, "))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no measured split:\n{stdout}"));
        // 10 % of 200: 20 expected; 6 to 40 is far outside chance.
        assert!((6..=40).contains(&to_west), "{to_west} of 200 to west");
        assert!(
            !stdout.contains("cleaning up after the failure"),
            "{stdout}"
        );
        let folder = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("working folder: "))
            .expect("the demo names its folder");
        assert!(
            !std::path::Path::new(folder).exists(),
            "{folder} left behind"
        );
    }
}

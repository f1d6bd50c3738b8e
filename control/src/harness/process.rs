//! A child process whose output goes to a log file, in its own process
//! group (so Ctrl-C in a terminal reaches only the parent, which then
//! stops its children itself), killed and reaped on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::HarnessError;

/// A running child.
#[derive(Debug)]
pub struct Process {
    child: Child,
}

impl Process {
    /// Starts `exe args…`, appending its stdout and stderr to `log`.
    ///
    /// # Errors
    /// When the log cannot be opened or the program cannot start.
    pub fn spawn_logged(exe: &Path, args: &[&str], log: &Path) -> Result<Self, HarnessError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(HarnessError::io(format!("opening {}", log.display())))?;
        let copy = file
            .try_clone()
            .map_err(HarnessError::io(format!("opening {}", log.display())))?;
        let mut command = Command::new(exe);
        command.args(args).stdout(copy).stderr(file);
        Ok(Self {
            child: spawn(command, exe)?,
        })
    }

    /// Starts `exe args…` with its output discarded.
    ///
    /// # Errors
    /// When the program cannot start.
    pub fn spawn_quiet(exe: &Path, args: &[&str]) -> Result<Self, HarnessError> {
        let mut command = Command::new(exe);
        command
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Ok(Self {
            child: spawn(command, exe)?,
        })
    }

    /// Its pid.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }

    /// Leaves it running after the handle is gone (`fedctl demo --keep`).
    pub fn detach(self) {
        std::mem::forget(self);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(mut command: Command, exe: &Path) -> Result<Child, HarnessError> {
    use std::os::unix::process::CommandExt;
    command
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(HarnessError::io(format!("starting {}", exe.display())))
}

//! Every VM STATE and LCM_STATE number OpenNebula sends, by name and class.
//!
//! The numbers are those of `include/VirtualMachine.h` (identical in 6.10, 7.0 and 7.4).
//! A number this table does not know is reported as unknown, never dropped.

use serde::{Deserialize, Serialize};

/// How a state relates to the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Nothing in flight: not reported.
    Steady,
    /// A driver operation was in flight; after a front-end death its answer is lost.
    Transient,
    /// The driver answered with an error; waits for an operator.
    Failure,
    /// Monitoring lost the VM (LCM UNKNOWN): reported on its own, often resolves by itself.
    Lost,
    /// A value OpenNebula no longer sends (removed from the enum).
    Removed,
    /// A number this version of oneha does not know (a newer OpenNebula?).
    Unknown,
}

impl Class {
    /// True when a VM in this class belongs in the report.
    pub fn is_stuck(self) -> bool {
        !matches!(self, Class::Steady)
    }
    /// Lower-case name, as in the JSON report.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Steady => "steady",
            Class::Transient => "transient",
            Class::Failure => "failure",
            Class::Lost => "lost",
            Class::Removed => "removed",
            Class::Unknown => "unknown",
        }
    }
}

use Class::{Failure as F, Removed as X, Steady as S, Transient as T};

/// VM STATE numbers 0..=11 (`<STATE>`); 7 (FAILED) was removed.
pub const VM_STATES: [(&str, Class); 12] = [
    ("INIT", S),
    ("PENDING", S),
    ("HOLD", S),
    ("ACTIVE", S),
    ("STOPPED", S),
    ("SUSPENDED", S),
    ("DONE", S),
    ("FAILED", X),
    ("POWEROFF", S),
    ("UNDEPLOYED", S),
    ("CLONING", T),
    ("CLONING_FAILURE", F),
];

/// The STATE number of ACTIVE: the only one whose LCM_STATE means anything.
pub const ACTIVE: i64 = 3;

/// LCM_STATE numbers 0..=71 (`<LCM_STATE>`), meaningful only when STATE is ACTIVE.
pub const LCM_STATES: [(&str, Class); 72] = [
    ("LCM_INIT", S),                        // 0
    ("PROLOG", T),                          // 1
    ("BOOT", T),                            // 2
    ("RUNNING", S),                         // 3
    ("MIGRATE", T),                         // 4
    ("SAVE_STOP", T),                       // 5
    ("SAVE_SUSPEND", T),                    // 6
    ("SAVE_MIGRATE", T),                    // 7
    ("PROLOG_MIGRATE", T),                  // 8
    ("PROLOG_RESUME", T),                   // 9
    ("EPILOG_STOP", T),                     // 10
    ("EPILOG", T),                          // 11
    ("SHUTDOWN", T),                        // 12
    ("CANCEL", X),                          // 13
    ("FAILURE", X),                         // 14
    ("CLEANUP_RESUBMIT", T),                // 15
    ("UNKNOWN", Class::Lost),               // 16
    ("HOTPLUG", T),                         // 17
    ("SHUTDOWN_POWEROFF", T),               // 18
    ("BOOT_UNKNOWN", T),                    // 19
    ("BOOT_POWEROFF", T),                   // 20
    ("BOOT_SUSPENDED", T),                  // 21
    ("BOOT_STOPPED", T),                    // 22
    ("CLEANUP_DELETE", T),                  // 23
    ("HOTPLUG_SNAPSHOT", T),                // 24
    ("HOTPLUG_NIC", T),                     // 25
    ("HOTPLUG_SAVEAS", T),                  // 26
    ("HOTPLUG_SAVEAS_POWEROFF", T),         // 27
    ("HOTPLUG_SAVEAS_SUSPENDED", T),        // 28
    ("SHUTDOWN_UNDEPLOY", T),               // 29
    ("EPILOG_UNDEPLOY", T),                 // 30
    ("PROLOG_UNDEPLOY", T),                 // 31
    ("BOOT_UNDEPLOY", T),                   // 32
    ("HOTPLUG_PROLOG_POWEROFF", T),         // 33
    ("HOTPLUG_EPILOG_POWEROFF", T),         // 34
    ("BOOT_MIGRATE", T),                    // 35
    ("BOOT_FAILURE", F),                    // 36
    ("BOOT_MIGRATE_FAILURE", F),            // 37
    ("PROLOG_MIGRATE_FAILURE", F),          // 38
    ("PROLOG_FAILURE", F),                  // 39
    ("EPILOG_FAILURE", F),                  // 40
    ("EPILOG_STOP_FAILURE", F),             // 41
    ("EPILOG_UNDEPLOY_FAILURE", F),         // 42
    ("PROLOG_MIGRATE_POWEROFF", T),         // 43
    ("PROLOG_MIGRATE_POWEROFF_FAILURE", F), // 44
    ("PROLOG_MIGRATE_SUSPEND", T),          // 45
    ("PROLOG_MIGRATE_SUSPEND_FAILURE", F),  // 46
    ("BOOT_UNDEPLOY_FAILURE", F),           // 47
    ("BOOT_STOPPED_FAILURE", F),            // 48
    ("PROLOG_RESUME_FAILURE", F),           // 49
    ("PROLOG_UNDEPLOY_FAILURE", F),         // 50
    ("DISK_SNAPSHOT_POWEROFF", T),          // 51
    ("DISK_SNAPSHOT_REVERT_POWEROFF", T),   // 52
    ("DISK_SNAPSHOT_DELETE_POWEROFF", T),   // 53
    ("DISK_SNAPSHOT_SUSPENDED", T),         // 54
    ("DISK_SNAPSHOT_REVERT_SUSPENDED", X),  // 55
    ("DISK_SNAPSHOT_DELETE_SUSPENDED", T),  // 56
    ("DISK_SNAPSHOT", T),                   // 57
    ("DISK_SNAPSHOT_REVERT", X),            // 58
    ("DISK_SNAPSHOT_DELETE", T),            // 59
    ("PROLOG_MIGRATE_UNKNOWN", T),          // 60
    ("PROLOG_MIGRATE_UNKNOWN_FAILURE", F),  // 61
    ("DISK_RESIZE", T),                     // 62
    ("DISK_RESIZE_POWEROFF", T),            // 63
    ("DISK_RESIZE_UNDEPLOYED", T),          // 64
    ("HOTPLUG_NIC_POWEROFF", T),            // 65
    ("HOTPLUG_RESIZE", T),                  // 66
    ("HOTPLUG_SAVEAS_UNDEPLOYED", T),       // 67
    ("HOTPLUG_SAVEAS_STOPPED", T),          // 68
    ("BACKUP", T),                          // 69
    ("BACKUP_POWEROFF", T),                 // 70
    ("RESTORE", T),                         // 71
];

/// Name and class of a STATE number; `None` for numbers this version does not know.
pub fn vm_state(n: i64) -> Option<(&'static str, Class)> {
    usize::try_from(n)
        .ok()
        .and_then(|i| VM_STATES.get(i))
        .copied()
}

/// Name and class of an LCM_STATE number; `None` for numbers this version does not know.
pub fn lcm_state(n: i64) -> Option<(&'static str, Class)> {
    usize::try_from(n)
        .ok()
        .and_then(|i| LCM_STATES.get(i))
        .copied()
}

/// Printable name of a STATE number (`STATE_42` when unknown).
pub fn vm_state_name(n: i64) -> String {
    vm_state(n).map_or_else(|| format!("STATE_{n}"), |(name, _)| name.to_string())
}

/// Printable name of an LCM_STATE number (`LCM_STATE_99` when unknown).
pub fn lcm_state_name(n: i64) -> String {
    lcm_state(n).map_or_else(|| format!("LCM_STATE_{n}"), |(name, _)| name.to_string())
}

/// The class of a VM from its STATE and LCM_STATE: stuck candidates are ACTIVE with an LCM
/// state other than LCM_INIT/RUNNING, CLONING and CLONING_FAILURE, plus anything unknown.
pub fn classify(state: i64, lcm: i64) -> Class {
    match vm_state(state) {
        None => Class::Unknown,
        Some((_, c)) if state != ACTIVE => c,
        Some(_) => lcm_state(lcm).map_or(Class::Unknown, |(_, c)| c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every number 0..=71 of the reference table in `shared/reference/opennebula.md`, with the
    /// class letter it gives (S, T, F, X; UNKNOWN is S* there, `Lost` here).
    const REFERENCE: &str = "0 LCM_INIT S|1 PROLOG T|2 BOOT T|3 RUNNING S|4 MIGRATE T|5 SAVE_STOP T|\
        6 SAVE_SUSPEND T|7 SAVE_MIGRATE T|8 PROLOG_MIGRATE T|9 PROLOG_RESUME T|10 EPILOG_STOP T|\
        11 EPILOG T|12 SHUTDOWN T|13 CANCEL X|14 FAILURE X|15 CLEANUP_RESUBMIT T|16 UNKNOWN L|\
        17 HOTPLUG T|18 SHUTDOWN_POWEROFF T|19 BOOT_UNKNOWN T|20 BOOT_POWEROFF T|\
        21 BOOT_SUSPENDED T|22 BOOT_STOPPED T|23 CLEANUP_DELETE T|24 HOTPLUG_SNAPSHOT T|\
        25 HOTPLUG_NIC T|26 HOTPLUG_SAVEAS T|27 HOTPLUG_SAVEAS_POWEROFF T|\
        28 HOTPLUG_SAVEAS_SUSPENDED T|29 SHUTDOWN_UNDEPLOY T|30 EPILOG_UNDEPLOY T|\
        31 PROLOG_UNDEPLOY T|32 BOOT_UNDEPLOY T|33 HOTPLUG_PROLOG_POWEROFF T|\
        34 HOTPLUG_EPILOG_POWEROFF T|35 BOOT_MIGRATE T|36 BOOT_FAILURE F|\
        37 BOOT_MIGRATE_FAILURE F|38 PROLOG_MIGRATE_FAILURE F|39 PROLOG_FAILURE F|\
        40 EPILOG_FAILURE F|41 EPILOG_STOP_FAILURE F|42 EPILOG_UNDEPLOY_FAILURE F|\
        43 PROLOG_MIGRATE_POWEROFF T|44 PROLOG_MIGRATE_POWEROFF_FAILURE F|\
        45 PROLOG_MIGRATE_SUSPEND T|46 PROLOG_MIGRATE_SUSPEND_FAILURE F|\
        47 BOOT_UNDEPLOY_FAILURE F|48 BOOT_STOPPED_FAILURE F|49 PROLOG_RESUME_FAILURE F|\
        50 PROLOG_UNDEPLOY_FAILURE F|51 DISK_SNAPSHOT_POWEROFF T|\
        52 DISK_SNAPSHOT_REVERT_POWEROFF T|53 DISK_SNAPSHOT_DELETE_POWEROFF T|\
        54 DISK_SNAPSHOT_SUSPENDED T|55 DISK_SNAPSHOT_REVERT_SUSPENDED X|\
        56 DISK_SNAPSHOT_DELETE_SUSPENDED T|57 DISK_SNAPSHOT T|58 DISK_SNAPSHOT_REVERT X|\
        59 DISK_SNAPSHOT_DELETE T|60 PROLOG_MIGRATE_UNKNOWN T|\
        61 PROLOG_MIGRATE_UNKNOWN_FAILURE F|62 DISK_RESIZE T|63 DISK_RESIZE_POWEROFF T|\
        64 DISK_RESIZE_UNDEPLOYED T|65 HOTPLUG_NIC_POWEROFF T|66 HOTPLUG_RESIZE T|\
        67 HOTPLUG_SAVEAS_UNDEPLOYED T|68 HOTPLUG_SAVEAS_STOPPED T|69 BACKUP T|\
        70 BACKUP_POWEROFF T|71 RESTORE T";

    fn letter(c: Class) -> &'static str {
        match c {
            Class::Steady => "S",
            Class::Transient => "T",
            Class::Failure => "F",
            Class::Lost => "L",
            Class::Removed => "X",
            Class::Unknown => "?",
        }
    }

    #[test]
    fn every_lcm_number_matches_the_reference() {
        let rows: Vec<&str> = REFERENCE.split('|').map(str::trim).collect();
        assert_eq!(rows.len(), 72);
        for (i, row) in rows.iter().enumerate() {
            let parts: Vec<&str> = row.split_whitespace().collect();
            assert_eq!(parts[0], i.to_string(), "row {row}");
            let (name, class) = lcm_state(i as i64).unwrap();
            assert_eq!((name, letter(class)), (parts[1], parts[2]), "LCM {i}");
            assert_eq!(classify(ACTIVE, i as i64), class, "ACTIVE/{name}");
            let expect_stuck = !matches!(i, 0 | 3);
            assert_eq!(
                classify(ACTIVE, i as i64).is_stuck(),
                expect_stuck,
                "{name}"
            );
        }
        for unknown in [-1, 72, 73, 100, i64::MAX, i64::MIN] {
            assert_eq!(lcm_state(unknown), None);
            assert_eq!(classify(ACTIVE, unknown), Class::Unknown);
            assert!(classify(ACTIVE, unknown).is_stuck());
            assert_eq!(lcm_state_name(unknown), format!("LCM_STATE_{unknown}"));
        }
    }

    #[test]
    fn every_vm_state_number() {
        let expect = [
            ("INIT", false),
            ("PENDING", false),
            ("HOLD", false),
            ("ACTIVE", false),
            ("STOPPED", false),
            ("SUSPENDED", false),
            ("DONE", false),
            ("FAILED", true),
            ("POWEROFF", false),
            ("UNDEPLOYED", false),
            ("CLONING", true),
            ("CLONING_FAILURE", true),
        ];
        for (n, (name, stuck)) in expect.iter().enumerate() {
            let n = n as i64;
            assert_eq!(vm_state_name(n), *name);
            // LCM_STATE is ignored outside ACTIVE, whatever it says.
            let lcm = if n == ACTIVE { 3 } else { 17 };
            assert_eq!(classify(n, lcm).is_stuck(), *stuck, "{name}");
        }
        assert_eq!(classify(10, 0), Class::Transient);
        assert_eq!(classify(11, 0), Class::Failure);
        assert_eq!(classify(7, 0), Class::Removed);
        for unknown in [-2, -1, 12, 99] {
            assert_eq!(classify(unknown, 3), Class::Unknown);
            assert_eq!(vm_state_name(unknown), format!("STATE_{unknown}"));
        }
    }
}

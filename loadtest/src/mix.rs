//! How many virtual users play each part, and how big the prepared world
//! must be for them.

use crate::cli::{Options, Scenario};

/// Virtual users by part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mix {
    pub browsers: usize,
    pub clients: usize,
    pub owners: usize,
    pub barbers: usize,
    pub scrapers: usize,
}

/// Of every thousand users in `mixed`: 750 browse, 180 book, 50 owners
/// watch their dashboards, 19 barbers run their day (and, unless left out,
/// one in a thousand scrapes, at least one).
const MIXED: [usize; 4] = [750, 180, 50, 19];

/// Splits `users` in proportion to `weights`, largest remainders first, so
/// the parts add up to `users` exactly.
fn split(users: usize, weights: &[usize]) -> Vec<usize> {
    let total: usize = weights.iter().sum();
    if total == 0 {
        return vec![0; weights.len()];
    }
    let mut parts: Vec<usize> = weights.iter().map(|w| users * w / total).collect();
    let mut by_remainder: Vec<usize> = (0..weights.len()).collect();
    by_remainder.sort_by_key(|&i| std::cmp::Reverse(users * weights[i] % total));
    let short = users - parts.iter().sum::<usize>();
    for &i in by_remainder.iter().take(short) {
        parts[i] += 1;
    }
    parts
}

impl Mix {
    pub fn of(options: &Options) -> Self {
        let users = options.users;
        match options.scenario {
            Scenario::Browse => Mix { browsers: users, ..Mix::default() },
            Scenario::Dashboard => Mix { owners: users, ..Mix::default() },
            Scenario::Abuse => Mix { scrapers: users, ..Mix::default() },
            Scenario::Book => {
                let parts = split(users, &[9, 1]);
                Mix { clients: parts[0], barbers: parts[1], ..Mix::default() }
            }
            Scenario::Mixed => {
                let scrapers =
                    if options.no_abuser || users < 2 { 0 } else { (users / 1000).max(1) };
                let parts = split(users - scrapers, &MIXED);
                Mix {
                    browsers: parts[0],
                    clients: parts[1],
                    owners: parts[2],
                    barbers: parts[3],
                    scrapers,
                }
            }
        }
    }

    /// Shops to prepare: one per owner at a dashboard, four barbers' worth
    /// per shop, and one per hundred users, within 2 to 500 (or as told).
    pub fn shops(&self, options: &Options) -> usize {
        let users = self.browsers + self.clients + self.owners + self.barbers + self.scrapers;
        let needed = self.owners.max(self.barbers.div_ceil(4)).max(users.div_ceil(100));
        options.shops.unwrap_or(needed.clamp(2, 500)).max(1)
    }

    /// Barbers per shop who get an account: enough for the barbers at work,
    /// so that two devices rarely share one (and its payments).
    pub fn barber_accounts_per_shop(&self, shops: usize) -> usize {
        self.barbers.div_ceil(shops.max(1)).clamp(1, 4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(scenario: Scenario, users: usize) -> Mix {
        let mut options = Options::new("http://127.0.0.1:8080");
        options.scenario = scenario;
        options.users = users;
        Mix::of(&options)
    }

    #[test]
    fn parts_add_up_and_keep_the_proportions() {
        assert_eq!(split(100, &MIXED), [75, 18, 5, 2]);
        assert_eq!(split(7, &[9, 1]), [6, 1]);
        assert_eq!(
            mix(Scenario::Mixed, 10_000),
            Mix { browsers: 7_500, clients: 1_800, owners: 500, barbers: 190, scrapers: 10 }
        );
        for users in [1, 2, 3, 10, 99, 1_000, 1_234] {
            let m = mix(Scenario::Mixed, users);
            assert_eq!(m.browsers + m.clients + m.owners + m.barbers + m.scrapers, users);
        }
    }

    #[test]
    fn the_world_fits_the_users() {
        let options = Options::new("http://127.0.0.1:8080");
        let m = mix(Scenario::Mixed, 10_000);
        assert_eq!(m.shops(&options), 500);
        assert_eq!(m.barber_accounts_per_shop(500), 1);
        let m = mix(Scenario::Book, 1_000);
        assert_eq!(m.shops(&options), 25);
        assert_eq!(m.barber_accounts_per_shop(25), 4);
    }
}

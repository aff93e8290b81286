//! A jail's `chains:` key: which base chains of banwarden's table carry its
//! rules (`[input]` by default, `[input, forward]` to cover traffic the host
//! routes, such as Docker-published ports).
//!
//! Owns parsing the list; the rules themselves are `firewall::nft`'s.

use serde_saphyr::Spanned;

use crate::firewall::Chains;

/// `[input]`, `[forward]` or `[input, forward]`; errors name the bad entry.
pub fn parse_chains(list: &[Spanned<String>]) -> Result<Chains, (usize, String)> {
    let mut chains = Chains {
        input: false,
        forward: false,
    };
    for (i, c) in list.iter().enumerate() {
        match c.value.trim() {
            "input" => chains.input = true,
            "forward" => chains.forward = true,
            other => {
                return Err((
                    i,
                    format!(
                        "`{other}` is not a chain: use input (this host's own services), \
                         forward (routed traffic, e.g. Docker-published ports), or both"
                    ),
                ))
            }
        }
    }
    if !chains.input && !chains.forward {
        return Err((0, "name at least one chain: input, forward".to_string()));
    }
    Ok(chains)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<Spanned<String>> {
        items
            .iter()
            .map(|s| serde_saphyr::from_str::<Spanned<String>>(&format!("'{s}'")).unwrap())
            .collect()
    }

    #[test]
    fn input_forward_or_both() {
        assert_eq!(
            parse_chains(&list(&["input", "forward"])),
            Ok(Chains {
                input: true,
                forward: true
            })
        );
        assert_eq!(
            parse_chains(&list(&["forward"])),
            Ok(Chains {
                input: false,
                forward: true
            })
        );
        let (i, e) = parse_chains(&list(&["input", "output"])).unwrap_err();
        assert_eq!(i, 1);
        assert!(e.contains("`output` is not a chain"), "{e}");
        assert!(parse_chains(&[]).is_err());
    }
}

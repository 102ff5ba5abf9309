//! `schema.graphql` is the code's SDL, byte for byte.

#[test]
fn committed_schema_matches_the_code() {
    let committed = include_str!("../../schema.graphql");
    let generated = bookedbarber::graphql::sdl();
    assert!(
        committed == generated,
        "schema.graphql is out of date: run `cargo run -- schema > schema.graphql` and commit it"
    );
}

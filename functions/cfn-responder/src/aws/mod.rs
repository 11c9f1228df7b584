//! One SDK adapter per service, each implementing a trait of `ports`.

pub mod dynamodb;
pub mod ec2;
pub mod ses;

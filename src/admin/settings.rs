//! The project settings besides keys that `project add` and `project set` change:
//! return-URL origins, portal configurations and the default locale.

use uuid::Uuid;

use super::{
    error::{AdminError, Result},
    stripe_keys::is_id_with_prefix,
};
use crate::{cli::SettingArgs, config::parse_origin, db::projects, stripe::is_portal_locale};

/// What `project add` and `project set` change besides keys, checked before any write.
pub(super) struct Settings {
    allowed_origins: Option<Option<Vec<String>>>,
    test_configuration: Option<Option<String>>,
    live_configuration: Option<Option<String>>,
    default_locale: Option<Option<String>>,
}

#[derive(Default)]
pub(super) struct Clears {
    pub(super) allowed_origins: bool,
    pub(super) test_configuration: bool,
    pub(super) live_configuration: bool,
    pub(super) default_locale: bool,
}

impl Settings {
    pub(super) fn parse(args: SettingArgs, clears: Clears) -> Result<Self> {
        let origins = args
            .allowed_origin
            .iter()
            .map(|o| parse_origin(o).map_err(|e| AdminError::Invalid(format!("--allowed-origin: {e}"))))
            .collect::<Result<Vec<_>>>()?;
        let configuration = |value: Option<String>, flag: &str| {
            value
                .map(|id| {
                    if is_id_with_prefix(&id, "bpc_") {
                        Ok(id)
                    } else {
                        Err(AdminError::Invalid(format!(
                            "--{flag}: expected a portal configuration ID like bpc_1MxbC4LkdIwHu7ix, got {id:?}"
                        )))
                    }
                })
                .transpose()
        };
        let locale = args
            .default_locale
            .map(|locale| {
                if is_portal_locale(&locale) {
                    Ok(locale)
                } else {
                    Err(AdminError::Invalid(format!(
                        "--default-locale: {locale:?} is not a locale Stripe's portal supports (e.g. auto, en, fr, en-GB)"
                    )))
                }
            })
            .transpose()?;
        let set_or_clear = |value: Option<String>, clear: bool| match (value, clear) {
            (Some(v), _) => Some(Some(v)),
            (None, true) => Some(None),
            (None, false) => None,
        };
        Ok(Self {
            allowed_origins: match (origins.is_empty(), clears.allowed_origins) {
                (false, _) => Some(Some(origins)),
                (true, true) => Some(None),
                (true, false) => None,
            },
            test_configuration: set_or_clear(
                configuration(args.test_portal_configuration, "test-portal-configuration")?,
                clears.test_configuration,
            ),
            live_configuration: set_or_clear(
                configuration(args.live_portal_configuration, "live-portal-configuration")?,
                clears.live_configuration,
            ),
            default_locale: set_or_clear(locale, clears.default_locale),
        })
    }

    pub(super) fn is_empty(&self) -> bool {
        self.allowed_origins.is_none()
            && self.test_configuration.is_none()
            && self.live_configuration.is_none()
            && self.default_locale.is_none()
    }

    pub(super) async fn apply(&self, tx: &mut sqlx::PgConnection, project: Uuid) -> sqlx::Result<()> {
        if let Some(origins) = &self.allowed_origins {
            projects::set_allowed_origins(&mut *tx, project, origins.as_deref()).await?;
        }
        if let Some(id) = &self.test_configuration {
            projects::set_portal_configuration(&mut *tx, project, false, id.as_deref()).await?;
        }
        if let Some(id) = &self.live_configuration {
            projects::set_portal_configuration(&mut *tx, project, true, id.as_deref()).await?;
        }
        if let Some(locale) = &self.default_locale {
            projects::set_default_locale(&mut *tx, project, locale.as_deref()).await?;
        }
        Ok(())
    }
}

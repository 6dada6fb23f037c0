//! The OpenAPI 3.1 document (`GET /openapi.json`) and Swagger UI (`GET /docs`), both
//! served from the binary: the UI's files are compiled in, nothing is fetched at run time.

use axum::Json;
use utoipa::{
    Modify, OpenApi,
    openapi::{
        self,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};
use utoipa_swagger_ui::SwaggerUi;

use serde_json::{Value, json};
use utoipa::openapi::{RefOr, Schema};

use crate::{
    error::{ErrorBody, ValidationErrorBody},
    stripe::PORTAL_LOCALES,
    validation::ValidationIssue,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "customer-portal",
        description = "Opens the Stripe Customer Portal for a SaaS app's signed-in users.\n\n\
            Every error body is JSON with a `detail` field, as FastAPI writes it.",
        license(name = "MIT", identifier = "MIT"),
    ),
    paths(super::portal::create_session, super::checkout_sync::sync, super::webhooks::receive, super::health::live, super::health::ready),
    components(schemas(ErrorBody, ValidationErrorBody, ValidationIssue)),
    modifiers(&BearerScheme, &LocaleEnum),
    tags(
        (name = "payments", description = "Stripe billing-portal sessions for the token's user"),
        (name = "webhooks", description = "Stripe's events, keeping each project's customer links current"),
        (name = "operations", description = "Health and readiness probes"),
    )
)]
pub struct ApiDoc;

/// The `bearer` scheme the portal route names in `security`.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "The end user's JWT: `sub` (user ID), `project_id` (UUID) and `exp` required.",
                    ))
                    .build(),
            ),
        );
    }
}

/// `locale` lists Stripe's locales, from the same list the validation uses.
struct LocaleEnum;

impl Modify for LocaleEnum {
    fn modify(&self, openapi: &mut openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else { return };
        let Some(RefOr::T(Schema::Object(body))) = components.schemas.get_mut("PortalRequestBody") else {
            return;
        };
        let Some(RefOr::T(Schema::Object(locale))) = body.properties.get_mut("locale") else { return };
        locale.enum_values = Some(PORTAL_LOCALES.iter().map(|l| json!(l)).chain([Value::Null]).collect());
    }
}

pub async fn document() -> Json<openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Swagger UI at `/docs`, reading the document from `/openapi.json`.
pub fn swagger_ui() -> SwaggerUi {
    // The document itself is served by `document`; the UI only needs to know where.
    SwaggerUi::new("/docs").config(utoipa_swagger_ui::Config::from("/openapi.json"))
}

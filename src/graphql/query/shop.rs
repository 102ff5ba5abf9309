//! Reading shops.

use async_graphql::{Context, ID, Object};

use crate::{
    domain::{self, page::Position},
    error::AppError,
    graphql::{
        db,
        id::{self, Kind},
        loader::ShopByIdLoader,
        object::{
            Shop, ShopConnection, ShopConnectionFields, connection_from_page, load_one,
            page_request,
        },
        public,
    },
};

#[derive(Default)]
pub struct ShopQuery;

#[Object]
impl ShopQuery {
    /// Shops, in the order they were created; `search` matches part of the
    /// name, ignoring case.
    #[graphql(
        complexity = "crate::graphql::limits::page_complexity(first, last, child_complexity)",
        cache_control(max_age = 10)
    )]
    async fn shops(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        search: Option<String>,
    ) -> async_graphql::Result<ShopConnection> {
        let request = page_request(first, after, last, before)?;
        public::touch_directory(ctx);
        let page = domain::shop::list(db(ctx)?, search.as_deref(), &request)
            .await
            .map_err(AppError::from)?;
        page.items.iter().for_each(|shop| public::touch_shop(ctx, shop.id));
        Ok(connection_from_page(
            page,
            |s| Position::id(s.id),
            Shop,
            ShopConnectionFields { search },
        ))
    }

    /// One shop, by `id` or by `slug` (exactly one of them).
    #[graphql(cache_control(max_age = 10))]
    async fn shop(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        slug: Option<String>,
    ) -> async_graphql::Result<Option<Shop>> {
        let found = match (id, slug) {
            (Some(id), None) => {
                let shop_id = id::decode_as(&id, Kind::Shop, "id")?;
                load_one::<ShopByIdLoader, _>(ctx, shop_id).await?
            }
            (None, Some(slug)) => {
                let found = domain::shop::by_slug(db(ctx)?, &slug).await.map_err(AppError::from)?;
                found.iter().for_each(|shop| public::touch_shop(ctx, shop.id));
                found
            }
            _ => return Err(AppError::bad_input("pass exactly one of `id` and `slug`").into()),
        };
        found
            .map(|shop| Some(Shop(shop)))
            .ok_or_else(|| {
                AppError::not_found("no shop has this id or slug; list shops with `shops`")
            })
            .map_err(Into::into)
    }
}

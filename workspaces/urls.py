from __future__ import annotations

from django.urls import path

from workspaces import views

urlpatterns = [
    path("", views.home, name="home"),
    path("workspaces/new/", views.workspace_create, name="workspace_create"),
    path("w/<slug:slug>/products/", views.products, name="products"),
    path("w/<slug:slug>/environments/", views.environments, name="environments"),
    path("w/<slug:slug>/catalog/<str:kind>/new/", views.catalog_item_form, name="catalog_add"),
    path(
        "w/<slug:slug>/catalog/<str:kind>/<int:pk>/edit/",
        views.catalog_item_form,
        name="catalog_edit",
    ),
    path(
        "w/<slug:slug>/catalog/<str:kind>/<int:pk>/delete/",
        views.catalog_item_delete,
        name="catalog_delete",
    ),
    path("w/<slug:slug>/members/", views.members, name="members"),
    path("w/<slug:slug>/members/<int:pk>/edit/", views.member_edit, name="member_edit"),
    path("w/<slug:slug>/members/<int:pk>/remove/", views.member_remove, name="member_remove"),
]

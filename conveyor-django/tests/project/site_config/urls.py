from django.urls import path
from shop import views

urlpatterns = [
    path("order/<str:kind>", views.order),
    path("result/<str:result_id>", views.result),
]

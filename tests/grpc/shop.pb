
ç

shop.protoshop.v1"4
Item
sku (	Rsku
quantity (Rquantity"-
Basket#
items (2.shop.v1.ItemRitems2◊
Cart%
Add.shop.v1.Item.shop.v1.Basket%
Get.shop.v1.Item.shop.v1.Basket)
Watch.shop.v1.Item.shop.v1.Basket0*
Upload.shop.v1.Item.shop.v1.Basket(*
Chat.shop.v1.Item.shop.v1.Basket(02/
Health%
Check.shop.v1.Item.shop.v1.Itembproto3